#!/usr/bin/env bash
# GPU benchmark, builtin engine vs sd-scripts (see bench/gpu_engines.py). The one command for the
# device tool, from the repo root, with carry=[".bench_carry"] and timeout_s=600:
#
#     bash bench/run_gpu.sh
#
# .bench_carry/ (ignored, never committed) holds the sd-scripts v0.10.1 tree, the CLIP BPE file and
# two wheel sets, installed into separate --target folders so versions never mix:
#   wheels_sd   -> /tmp/site_sd   (diffusers 0.32.1, transformers 4.54.1, tokenizers 0.21.4, hub 0.34.3, ...)
#   wheels_ours -> /tmp/site_ours (diffusers 0.42.1, peft 0.21.2)
# Extra arguments go to gpu_engines.py (e.g. --only builtin_b1_r32,sd-scripts_b1_r32 or --deadline-s 400).
# Locally (CPU check): PYTHON=/tmp/venvtest/bin/python bash bench/run_gpu.sh --cpu-smoke --out /tmp/x ...
set -u -o pipefail
cd "$(dirname "$0")/.." || exit 1
PY="${PYTHON:-python3}"
SITE_SD="${SITE_SD:-/tmp/site_sd}"      # override only for a local test beside other users of /tmp/site_sd
SITE_OURS="${SITE_OURS:-/tmp/site_ours}"
OUT="${OUT:-$PWD/bench/out/gpu_engines}"
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
unset PYTHONPATH
{
  echo "== $(date -u '+%F %T') UTC on $(hostname); repo $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
  nvidia-smi --query-gpu=name,memory.total,memory.used,driver_version --format=csv,noheader 2>&1 | head -3
  "$PY" -c "import sys, torch; print('python', sys.version.split()[0], 'torch', torch.__version__, 'cuda', torch.cuda.is_available())"
  du -sh .bench_carry 2>/dev/null
  ok=1
  for t in sd ours; do
    if [ "$t" = sd ]; then site="$SITE_SD"; else site="$SITE_OURS"; fi
    rm -rf "$site"
    if ! "$PY" -m pip install -q --disable-pip-version-check --no-index --no-deps --no-compile --no-cache-dir \
         --target "$site" .bench_carry/wheels_$t/*.whl; then
      echo "!! pip install of .bench_carry/wheels_$t failed"; ok=0
    fi
  done
  [ "$ok" = 1 ] && echo "== wheels installed: $(ls "$SITE_SD" | grep -c dist-info) into $SITE_SD, $(ls "$SITE_OURS" | grep -c dist-info) into $SITE_OURS"
  "$PY" bench/gpu_engines.py --out "$OUT" --site-sd "$SITE_SD" --site-ours "$SITE_OURS" "$@"
  echo "== exit $? at $(date -u '+%T') UTC"
} 2>&1 | tee "$OUT/bench.log"

"""Build a real Forge Neo (gradio 4.40) that runs on CPU, with this extension installed the Neo
way, for the opt-in host test tier. Nothing of the host lives in this repository.

    python tests/host/setup_forge_neo.py --neo /work/hosts/forge-neo \
        --source neo=/work/.mirror/exo101+sd-webui-forge-neo-v3/repo \
        --python /root/.pyenv/versions/3.13.0/bin/python3.13 \
        --models /work/hosts/models-neo --sd15 /work/hosts/models/Stable-diffusion/sd15-random.safetensors \
        [--smoke] [--measure-startup]

Steps (each skipped when already done; what it does is printed):
 1. --neo: when missing, written from a LOCAL git directory given with --source neo=GITDIR (never
    from the network): the `webui/` folder of --commit (default: the exo101/sd-webui-forge-neo-v3
    fork's de2193d, which is its "Forge Neo v3.5" import f95f632 plus the tracked
    backend/huggingface/ configs and tokenizers that Neo loads SD1.5's CLIP tokenizer from, so no
    Hugging Face download is needed). The fork's bundled third-party extensions (webui/extensions/*)
    are left out: upstream Neo ships that folder empty. Upstream `Haoming02/sd-webui-forge-classic`
    branch `neo` serves as well (--commit <its commit> --subdir "").
 2. <neo>/venv from --python (Neo targets Python 3.13), installed in Neo's own order
    (modules/launch_utils.prepare_environment): the torch/torchvision pair (--torch/--torchvision,
    builds that run on CPU), then `gradio==4.40.0 gradio_rangeslider==0.0.8`, then Neo's
    requirements.txt in a separate pip run (its bare `torch` line pinned to --torch, setuptools
    80.9.0 instead of 69.5.1: torch 2.14 needs >= 77.0.3, >= 81 has no pkg_resources). Neo pins
    Pillow 12.2.0 while gradio 4.40 asks for Pillow < 11: as in Neo's launcher, pip installs
    Pillow 12.2.0 over gradio's pin and warns (gradio 4.40 runs with it). Neo's pins keep pydantic
    2.10.6 and huggingface-hub 0.36 (gradio 4.40 needs both: its page 500s with pydantic 2.14 and
    `import gradio` fails on hub >= 1.0).
 3. the extension in <neo>/extensions/<name> (symlink, or --copy-extension), then Neo's own
    `launch_utils.run_extension_installer(<dir>)` in Neo's venv; `pip freeze --all` compared.
 4. <models>/Stable-diffusion/<sd15 name>: a symlink to --sd15, a full-size SD1.5-architecture
    checkpoint (tests/host/random_sd15.py writes one with random weights; Neo refuses tiny models),
    and an empty <models>/Lora.
 5. prints the command that starts Neo on CPU (tests/host/forge_neo_host.py builds it);
    --smoke starts it once from a clean data dir and checks the extension's API, the tab, a
    txt2img on the random SD1.5, /sdapi/v1/refresh-loras and /sdapi/v1/loras;
    --measure-startup starts it once more without the extension (link removed, then restored)
    and prints both "Startup time" lines.
Standard library only; every subprocess gets an argument list; only pip reaches a registry.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(HERE))
import a1111_host  # noqa: E402  (sibling modules, standard library only)
import forge_neo_host  # noqa: E402
import setup_a1111 as common  # noqa: E402  (checkout, venv, extension and smoke helpers)

# exo101/sd-webui-forge-neo-v3: f95f632 "Initial commit: SD WebUI Forge Neo v3.5" (version "neo",
# release "2.26"); de2193d = the same webui/ plus backend/huggingface/ (and a .gitignore/webui.bat edit).
NEO_COMMIT = "de2193d91bb736beb63c9680f2ec9d842f644045"
NEO_SUBDIR = "webui"
NEO_MARKER = "modules_forge/forge_version.py"
SOURCE_STAMP = ".lora_trainer_neo_source.json"
GRADIO = ("gradio==4.40.0", "gradio_rangeslider==0.0.8")  # launch_utils: GRADIO_PACKAGE's default
DEFAULT_EXTENSION_NAME = common.DEFAULT_EXTENSION_NAME


def say(msg: str) -> None:
    print(f"[setup_forge_neo] {msg}", flush=True)


# --- 1. the Neo tree ------------------------------------------------------------------------

def bundled_extension(path: str) -> bool:
    """The fork's third-party extensions under extensions/ (not in upstream Neo)."""
    parts = path.split("/")
    return len(parts) > 2 and parts[0] == "extensions"


def ensure_neo_tree(neo: Path, sources: dict[str, Path], commit: str, subdir: str) -> None:
    if (neo / "launch.py").is_file() and (neo / NEO_MARKER).is_file():
        try:
            stamp = json.loads((neo / SOURCE_STAMP).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            stamp = {}
        note = "" if stamp.get("commit") in (None, commit) else f" (WARNING: written from {stamp['commit'][:10]})"
        say(f"neo: {neo} is there{note}")
        return
    if neo.exists() and any(neo.iterdir()):
        raise SystemExit(f"[setup_forge_neo] {neo} exists but has no launch.py / {NEO_MARKER}")
    if "neo" not in sources:
        raise SystemExit(f"[setup_forge_neo] {neo} is missing: give --source neo=<local git dir of "
                         "exo101/sd-webui-forge-neo-v3 or Haoming02/sd-webui-forge-classic (branch neo)>")
    git_dir = sources["neo"]
    if (git_dir / ".git").is_dir():
        git_dir = git_dir / ".git"
    full = common.git(git_dir, "rev-parse", "--verify", f"{commit}^{{commit}}").stdout.strip()
    tmp = neo.with_name(neo.name + ".partial")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    treeish = f"{full}:{subdir}" if subdir else full
    skipped = common.write_tree(git_dir, treeish, tmp, keep=lambda p: not bundled_extension(p))
    if skipped:
        say(f"neo: skipped {len(skipped)} file(s) whose blobs are missing: {', '.join(skipped)}")
    for needed in ("launch.py", NEO_MARKER, "backend/huggingface/runwayml/stable-diffusion-v1-5/tokenizer/vocab.json"):
        if not (tmp / needed).is_file():
            raise SystemExit(f"[setup_forge_neo] {treeish} has no {needed}: not a Neo tree with its "
                             "backend/huggingface/ folder")
    (tmp / SOURCE_STAMP).write_text(json.dumps({"source": str(sources["neo"]), "commit": full, "subdir": subdir,
                                                "left_out": "extensions/* (the fork's bundled extensions)",
                                                "missing_blobs": skipped}, indent=1) + "\n", encoding="utf-8")
    tmp.rename(neo)
    version = (neo / NEO_MARKER).read_text(encoding="utf-8").strip().replace("\n", ", ")
    say(f"neo: wrote {neo} from {treeish} ({version})")


# --- 2. Neo's venv ----------------------------------------------------------------------------

def adjusted_requirements(text: str, torch_spec: str) -> str:
    """Neo's requirements.txt with its bare `torch` line pinned to the build installed before and
    setuptools 80.9.0 instead of 69.5.1 (torch 2.14 needs >= 77.0.3; >= 81 lacks pkg_resources)."""
    out = []
    for line in text.splitlines():
        name = re.split(r"[=<>!~;\s\[#]", line.strip(), maxsplit=1)[0].lower().replace("_", "-")
        if name == "torch":
            out.append(f"{torch_spec}  # was: {line.strip()}")
        elif name == "setuptools":
            out.append(f"{common.SETUPTOOLS}  # was: {line.strip()} (new torch needs >= 77.0.3)")
        else:
            out.append(line)
    return "\n".join(out) + "\n"


NEO_IMPORT_CHECK = """
import torch, torchvision, gradio, pydantic, PIL, transformers, diffusers, huggingface_hub, fastapi
boxes = torch.tensor([[0., 0., 1., 1.], [0., 0., 1., 1.]])
torchvision.ops.nms(boxes, torch.tensor([1., .5]), .5)
from gradio_rangeslider import RangeSlider
print('torch', torch.__version__, 'torchvision', torchvision.__version__, 'gradio', gradio.__version__,
      'pydantic', pydantic.VERSION, 'Pillow', PIL.__version__, 'transformers', transformers.__version__,
      'diffusers', diffusers.__version__, 'huggingface_hub', huggingface_hub.__version__, 'fastapi', fastapi.__version__)
"""


def build_neo_venv(neo: Path, python: str, torch_spec: str, torchvision_spec: str) -> Path:
    venv = neo / "venv"
    reqs = adjusted_requirements((neo / "requirements.txt").read_text(encoding="utf-8"), torch_spec)
    key = {"python": common.base_python_version(python), "requirements": hashlib.sha256(reqs.encode()).hexdigest(),
           "first": [torch_spec, torchvision_spec, *GRADIO]}
    py = venv / "bin" / "python"
    if py.exists() and common.stamp_matches(venv, key):
        say(f"neo venv: {venv} is up to date (stamp {common.VENV_STAMP})")
        return py
    t0 = time.monotonic()
    py = common.make_venv(python, venv)
    pip = [py, "-m", "pip", "install", "--disable-pip-version-check", "--prefer-binary"]
    say("neo venv: torch first, then gradio, then Neo's requirements (Neo's launcher order)")
    common.run([*pip, torch_spec, torchvision_spec])
    common.run([*pip, *GRADIO])
    req_file = venv / "requirements_lora_trainer_host.txt"
    req_file.write_text(reqs, encoding="utf-8")
    # A separate run, as Neo's launcher does: pip puts Pillow 12.2.0 over gradio 4.40's `pillow<11`
    # and reports the conflict instead of refusing the whole set.
    proc = common.run([*pip, "-r", req_file], capture=True)
    for line in (proc.stdout + proc.stderr).splitlines():
        if "requires" in line and "incompatible" in line or line.startswith("ERROR: pip's dependency resolver"):
            say(f"neo venv: pip: {line.strip()}")
    out = common.run([py, "-c", NEO_IMPORT_CHECK], capture=True).stdout.strip()
    say(f"neo venv: imports work ({out.splitlines()[-1] if out else ''}) in {time.monotonic() - t0:.0f} s")
    common.write_stamp(venv, key)
    return py


# --- 4. models ----------------------------------------------------------------------------------

def install_models(models: Path, sd15: Path) -> dict:
    sd_dir, lora_dir = models / "Stable-diffusion", models / "Lora"
    sd_dir.mkdir(parents=True, exist_ok=True)
    lora_dir.mkdir(parents=True, exist_ok=True)
    if not sd15.is_file() or sd15.stat().st_size < 1_500_000_000:
        raise SystemExit(f"[setup_forge_neo] {sd15} is not a full-size SD1.5 checkpoint: write one with "
                         f"`<trainer python> {HERE / 'random_sd15.py'} {sd15} --ldm-yaml <A1111>/configs/v1-inference.yaml` "
                         "(or tests/host/setup_a1111.py)")
    link = sd_dir / sd15.name
    if link.is_symlink() and Path(os.readlink(link)) == sd15:
        say(f"models: {link} -> {sd15} is there")
    else:
        if link.is_symlink():
            link.unlink()
        elif link.exists():
            raise SystemExit(f"[setup_forge_neo] {link} is a real file; remove it")
        link.symlink_to(sd15)
        say(f"models: linked {link} -> {sd15}")
    others = sorted(p.name for p in sd_dir.iterdir() if p.name != link.name)
    if others:
        say(f"models: WARNING {sd_dir} also holds {others}: Neo refuses checkpoints its detector does not know")
    return {"ckpt_dir": sd_dir, "lora_dir": lora_dir, "sd15": link}


# --- 5. smoke start and startup timings -------------------------------------------------------

def start_neo(neo: Path, port: int, paths: dict, trainer_python: Path, work: Path, label: str, timeout_s: float):
    argv, env = forge_neo_host.start_command(neo, port=port, ckpt_dirs=[paths["ckpt_dir"]], lora_dir=paths["lora_dir"],
                                             data_dir=work / "lora-trainer-data", trainer_python=trainer_python,
                                             settings_dir=work / "settings")
    log = work / f"neo-{label}.log"
    say(f"{label}: starting Neo (log {log})")
    host = forge_neo_host.NeoProcess(argv, env, cwd=neo, log_path=log).start()
    try:
        line = host.wait_ready(timeout_s)
    except Exception:
        host.stop()
        raise
    say(f"{label}: ready after {host.ready_after_s} s: {line}")
    return host


def report_log(host, label: str) -> None:
    """The lines of the log that start an error report, a traceback or name an exception."""
    lines = host.log_path.read_text(encoding="utf-8", errors="replace").splitlines()
    for i, text in enumerate(lines):
        if text.startswith("*** ") or text.startswith("Traceback") or re.match(r"^\s*[\w.]*(Error|Exception): ", text):
            say(f"{label}: log {i + 1}: {text.rstrip()}")


def smoke(neo: Path, port: int, paths: dict, trainer_python: Path, timeout_s: float, name: str) -> tuple[bool, float | None]:
    work = Path(tempfile.mkdtemp(prefix="neo-smoke-"))
    ok = True
    host = start_neo(neo, port, paths, trainer_python, work, "smoke", timeout_s)
    try:
        status, body = a1111_host.request_json(host.url + "/lora-trainer/v1/presets", timeout_s=60)
        presets = body.get("presets") if isinstance(body, dict) else None
        shown = [p.get("id") for p in presets if isinstance(p, dict)] if isinstance(presets, list) else str(body)[:300]
        say(f"smoke: GET /lora-trainer/v1/presets -> {status}, presets {shown}")
        ok &= status == 200
        status, body = a1111_host.request_json(host.url + "/config", timeout_s=60)
        tabs = forge_neo_host.top_tabs(body)
        has_tab = status == 200 and tabs.get("tab_lora_trainer") == "Train LoRA"
        say(f"smoke: GET /config -> {status}, Train LoRA tab {'present' if has_tab else 'MISSING'} "
            f"(top-level tabs: {list(tabs.values())})")
        ok &= has_tab
        status, body = a1111_host.request_json(host.url + "/internal/profile-startup", timeout_s=60)
        say(f"smoke: startup timer entries of the extension's script: "
            f"{forge_neo_host.startup_entries(body, 'lora_trainer.py')}")
        ok &= common.txt2img(host, "random SD1.5", {"width": 64, "height": 64, "steps": 2,
                                                    "override_settings": {"sd_model_checkpoint": name}}, name)
        status, body = a1111_host.request_json(host.url + "/sdapi/v1/refresh-loras", {}, timeout_s=120)
        say(f"smoke: POST /sdapi/v1/refresh-loras -> {status} {str(body)[:200]}")
        ok &= status == 200
        status, body = a1111_host.request_json(host.url + "/sdapi/v1/loras", timeout_s=60)
        names = [x.get("name") for x in body] if isinstance(body, list) else str(body)[:300]
        say(f"smoke: GET /sdapi/v1/loras -> {status}, {names}")
        ok &= status == 200 and isinstance(body, list)
    finally:
        host.stop()
        report_log(host, "smoke")
    say(f"smoke: stopped; {'all checks passed' if ok else 'CHECKS FAILED'} (logs in {work})")
    return ok, forge_neo_host.startup_seconds(host.startup_line)


def startup_without_extension(neo: Path, ext_dir: Path, port: int, paths: dict, trainer_python: Path,
                              timeout_s: float) -> float | None:
    """One start with the extension's folder moved out of extensions/ (put back afterwards)."""
    work = Path(tempfile.mkdtemp(prefix="neo-bare-"))
    parked = work / ext_dir.name
    os.rename(ext_dir, parked)
    try:
        host = start_neo(neo, port, paths, trainer_python, work, "without-extension", timeout_s)
        host.stop()
    finally:
        os.rename(parked, ext_dir)
    return forge_neo_host.startup_seconds(host.startup_line)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("--neo", type=Path, required=True, help="the Neo tree (written from --source neo=GITDIR if missing)")
    p.add_argument("--source", action="append", default=[], metavar="neo=GITDIR",
                   help="local git directory to write a MISSING --neo from")
    p.add_argument("--commit", default=NEO_COMMIT, help="commit (or ref) in --source (default: the fork's de2193d)")
    p.add_argument("--subdir", default=NEO_SUBDIR, help="the Neo tree's folder in that commit ('' for upstream Neo)")
    p.add_argument("--python", default=sys.executable, help="base interpreter for the venv (Neo targets 3.13)")
    p.add_argument("--models", type=Path, required=True, help="gets Stable-diffusion/ (the SD1.5 link) and Lora/")
    p.add_argument("--sd15", type=Path, required=True, help="a full-size SD1.5-architecture .safetensors")
    common.add_host_args(p, port=7862, data_dir_default="<neo>/../lora-trainer-data-neo",
                         trainer_python_help="LORA_TRAINER_PYTHON in the printed command "
                                             "(the project's `make env` Python)",
                         torch_help="torch requirement (a build that runs on CPU)")
    p.add_argument("--smoke", action="store_true", help="start Neo once and check API, tab, txt2img, Lora list")
    p.add_argument("--measure-startup", action="store_true",
                   help="--smoke, then one start without the extension; prints both Startup times")
    p.add_argument("--smoke-timeout", type=float, default=600.0)
    a = p.parse_args(argv)

    t_all = time.monotonic()
    neo = a.neo.expanduser().resolve()
    models = a.models.expanduser().resolve()
    extension = a.extension.expanduser().resolve()
    trainer_python = a.trainer_python.expanduser().absolute()
    sources = common.parse_pairs(a.source, "--source")

    ensure_neo_tree(neo, sources, a.commit, a.subdir)
    py = build_neo_venv(neo, a.python, a.torch, a.torchvision)
    ext_dir = common.place_extension(neo, extension, a.extension_name, a.copy_extension)
    common.run_installer(neo, py, ext_dir)
    paths = install_models(models, a.sd15.expanduser().resolve())

    data_dir = (a.data_dir or neo.parent / "lora-trainer-data-neo").expanduser().resolve()
    argv, env = forge_neo_host.start_command(neo, port=a.port, ckpt_dirs=[paths["ckpt_dir"]], lora_dir=paths["lora_dir"],
                                             data_dir=data_dir, trainer_python=trainer_python)
    say(f"done in {time.monotonic() - t_all:.0f} s. Start Forge Neo on CPU (wait for its 'Startup time' line):")
    print(forge_neo_host.shell_line(argv, env, neo), flush=True)
    ok = True
    if a.smoke or a.measure_startup:
        ok, with_ext = smoke(neo, a.port, paths, trainer_python, a.smoke_timeout, paths["sd15"].stem)
        if a.measure_startup:
            without = startup_without_extension(neo, ext_dir, a.port, paths, trainer_python, a.smoke_timeout)
            say(f"startup time: {with_ext} s with the extension, {without} s without "
                f"(one start each; difference {None if None in (with_ext, without) else round(with_ext - without, 1)} s)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""GPU benchmark: the builtin engine and kohya sd-scripts side by side, in one run.

SD1.5 architecture (random weights, built here with our own code), 512 px, bf16, SDPA,
cached latents, AdamW, LoRA rank 32 (text encoder + U-Net), batch 1 / 4 / 16; then rank 128
at batch 1 (the thesis's setting) if time is left. For every run: steady-state it/s,
images/s, peak GPU memory, wall time; and the builtin / sd-scripts ratio per setting.

    bash bench/run_gpu.sh                      # on the GPU box (installs the carried wheels)
    python bench/gpu_engines.py --cpu-smoke    # CPU check of the whole path (128 px, 2 steps)

Each engine runs as `python -m accelerate.commands.launch --num_processes 1 --num_machines 1
--mixed_precision bf16 --dynamo_backend no bench/_memwrap.py <entry point> --config_file
run.toml --dataset_config dataset.toml`, with its own PYTHONPATH so package versions never mix:
  builtin:    <repo> : /tmp/site_ours  (diffusers 0.42.1, peft 0.21.2; the box's transformers 5.x)
  sd-scripts: .bench_carry/sd-scripts : /tmp/site_sd  (its pins: transformers 4.54.1, diffusers 0.32.1, ...)

Speed: tqdm's `steps:` updates on stderr are time-stamped as they arrive; it/s is measured
from the first update at or after 20 % of the steps (warm-up excluded) to the last one.
Memory: NVML (nvidia-smi's source) polled every 100 ms during each run, minus the idle
reading before it (includes the CUDA context), and torch's allocator peak written by
bench/_memwrap.py at exit (same wrapper for both engines).

This parent process imports only the standard library (and pynvml when present): it never
touches CUDA itself, so the memory readings belong to the engine processes alone.
Stdlib only; results go to --out ($OUT when set): results.json, results.md, runs_tail.txt.
"""

from __future__ import annotations

import argparse
import codecs
import datetime as _dt
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CARRY = REPO / ".bench_carry"
BPE = CARRY / "clip" / "bpe_simple_vocab_16e6.txt.gz"
SD_ENTRY = "train_network.py"
OURS_ENTRY = "lib_lora_trainer.engines.builtin.train"
ENGINES = ("builtin", "sd-scripts")

# (engine, batch, rank, max_train_steps, per-run timeout s): most important numbers first.
GPU_PLAN = [
    ("builtin", 1, 32, 60, 170), ("sd-scripts", 1, 32, 60, 170),
    ("builtin", 4, 32, 40, 170), ("sd-scripts", 4, 32, 40, 170),
    ("builtin", 16, 32, 20, 190), ("sd-scripts", 16, 32, 20, 190),
    ("builtin-compile", 1, 32, 80, 240),  # torch_compile = true (inductor); compile time is in setup
    ("builtin", 1, 128, 60, 170), ("sd-scripts", 1, 128, 60, 170),
    ("builtin-compile", 4, 32, 60, 240),
]
MIN_START_S = 60  # do not start a GPU run with less time left than this

STEP_RE = re.compile(r"steps:\s*\d+%\|[^|]*\|\s*(\d+)/(\d+)\s*\[([^\]]*)\]?")
RATE_RE = re.compile(r"([\d.]+)\s*(it/s|s/it)")


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


# ---------------------------------------------------------------- preparation (engine env)
def prepare(work: Path, res: int, n_images: int, model: Path, device: str) -> dict:
    """Runs in a child process with the builtin engine's PYTHONPATH (diffusers, transformers)."""
    info: dict = {}
    t0 = time.time()
    from lib_lora_trainer.tokenizer import write_tokenizer_cache_dir

    write_tokenizer_cache_dir(work / "tok", include_sdxl=False)
    info["tokenizer_s"] = round(time.time() - t0, 1)

    from PIL import Image, ImageDraw

    img_dir = work / "data" / "img" / "100_bench"
    if img_dir.exists():
        shutil.rmtree(img_dir)
    img_dir.mkdir(parents=True)
    import random

    rnd = random.Random(1234)
    colours = ["red", "green", "blue", "yellow", "purple", "orange", "white", "black"]
    shapes = ["circle", "square", "triangle", "ring"]
    for i in range(n_images):
        bg = tuple(rnd.randrange(256) for _ in range(3))
        im = Image.new("RGB", (res, res), bg)
        d = ImageDraw.Draw(im)
        colour, shape = colours[i % len(colours)], shapes[(i // 2) % len(shapes)]
        for _ in range(6):  # some texture so the VAE sees more than a flat field
            x0, y0 = rnd.randrange(res), rnd.randrange(res)
            d.line([(x0, y0), (rnd.randrange(res), rnd.randrange(res))], fill=tuple(rnd.randrange(256) for _ in range(3)),
                   width=max(1, res // 64))
        a, b = res // 4, 3 * res // 4
        if shape == "circle":
            d.ellipse([a, a, b, b], fill=colour)
        elif shape == "square":
            d.rectangle([a, a, b, b], fill=colour)
        elif shape == "triangle":
            d.polygon([(res // 2, a), (a, b), (b, b)], fill=colour)
        else:
            d.ellipse([a, a, b, b], outline=colour, width=max(2, res // 16))
        im.save(img_dir / f"{i:03d}.png")
        (img_dir / f"{i:03d}.txt").write_text(f"bench, {colour} {shape}, simple background, image {i}\n",
                                              encoding="utf-8")
    info["dataset"] = str(img_dir)

    import torch

    info["torch"] = torch.__version__
    info["cuda_available"] = torch.cuda.is_available()
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
    if model.is_file() and model.stat().st_size > 1_500_000_000:
        info["model"] = f"reused {model} ({model.stat().st_size} bytes)"
        return info

    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from lib_lora_trainer.models.configs import component_configs
    from lib_lora_trainer.models.single_file import save_single_file

    t1 = time.time()
    cfg = component_configs("sd1")
    torch.manual_seed(0)
    dev = "cuda" if device == "cuda" and torch.cuda.is_available() else "cpu"
    try:
        with torch.device(dev), torch.no_grad():
            unet = UNet2DConditionModel.from_config(cfg["unet"])
            vae = AutoencoderKL.from_config(cfg["vae"])
            te = CLIPTextModel(CLIPTextConfig.from_dict(cfg["text_encoder"]))
    except Exception as exc:  # fall back to a (slower) CPU build
        if dev == "cpu":
            raise
        print(f"random init on {dev} failed ({exc!r}); building on the CPU", flush=True)
        dev = "cpu"
        with torch.no_grad():
            unet = UNet2DConditionModel.from_config(cfg["unet"])
            vae = AutoencoderKL.from_config(cfg["vae"])
            te = CLIPTextModel(CLIPTextConfig.from_dict(cfg["text_encoder"]))
    counts = {n: sum(p.numel() for p in m.parameters()) for n, m in (("unet", unet), ("vae", vae), ("te", te))}
    for m in (unet, vae, te):
        m.to("cpu", torch.float16)
    t2 = time.time()
    model.parent.mkdir(parents=True, exist_ok=True)
    save_single_file(unet, vae, te, model, dtype=torch.float16)
    info["model"] = (f"built on {dev} in {t2 - t1:.1f} s, saved in {time.time() - t2:.1f} s: {model} "
                     f"({model.stat().st_size} bytes; params {counts})")
    return info


# ---------------------------------------------------------------- configs
def toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    return json.dumps(str(v))  # TOML basic strings accept JSON escapes for plain paths


def write_configs(run_dir: Path, work: Path, model: Path, res: int, batch: int, rank: int, steps: int,
                  mixed_precision: str, compile_: bool = False) -> tuple[Path, Path]:
    run_dir.mkdir(parents=True, exist_ok=True)
    run = {
        "pretrained_model_name_or_path": str(model),
        "output_dir": str(run_dir / "lora"),
        "output_name": f"bench_b{batch}_r{rank}",
        "save_model_as": "safetensors",
        "network_module": "networks.lora",
        "network_dim": rank,
        "network_alpha": 16,
        "network_train_unet_only": False,
        "learning_rate": 1e-4,
        "lr_scheduler": "constant",
        "optimizer_type": "AdamW",
        "max_train_steps": steps,
        "train_batch_size": batch,
        "mixed_precision": mixed_precision,
        "cache_latents": True,
        "sdpa": True,
        "gradient_checkpointing": False,
        "seed": 42,
        "tokenizer_cache_dir": str(work / "tok"),
    }
    if compile_:
        run["torch_compile"] = True
    run_toml = run_dir / "run.toml"
    run_toml.write_text("".join(f"{k} = {toml_value(v)}\n" for k, v in run.items()), encoding="utf-8")
    ds = (
        "[general]\n"
        'caption_extension = ".txt"\n'
        "shuffle_caption = false\n"
        "keep_tokens = 0\n\n"
        "[[datasets]]\n"
        f"resolution = {res}\n"
        f"batch_size = {batch}\n"
        "enable_bucket = false\n\n"
        "  [[datasets.subsets]]\n"
        f"  image_dir = {toml_value(str(work / 'data' / 'img' / '100_bench'))}\n"
        "  num_repeats = 100\n"
    )
    ds_toml = run_dir / "dataset.toml"
    ds_toml.write_text(ds, encoding="utf-8")
    return run_toml, ds_toml


# ---------------------------------------------------------------- GPU memory sampling
class MemSampler:
    """Polls GPU 0's used memory (bytes) in a thread: NVML, else nvidia-smi, else nothing."""

    def __init__(self, interval: float = 0.1):
        self.interval = interval
        self.source = None
        self._nvml = self._handle = None
        try:
            import pynvml  # nvidia-ml-py

            pynvml.nvmlInit()
            self._nvml, self._handle = pynvml, pynvml.nvmlDeviceGetHandleByIndex(0)
            self.source = "nvml"
        except Exception:
            if shutil.which("nvidia-smi") and self._smi_once() is not None:
                self.source = "nvidia-smi"
        self._stop = threading.Event()
        self._thread = None
        self._proc = None
        self.peak = None

    def _smi_once(self):
        try:
            out = subprocess.run(["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits",
                                  "--id=0"], capture_output=True, text=True, timeout=20).stdout
            return int(float(out.strip().splitlines()[0])) * 2**20
        except Exception:
            return None

    def read(self):
        if self.source == "nvml":
            try:
                return int(self._nvml.nvmlDeviceGetMemoryInfo(self._handle).used)
            except Exception:
                return None
        if self.source == "nvidia-smi":
            return self._smi_once()
        return None

    def baseline(self):
        vals = [v for v in (self.read() for _ in range(3)) if v is not None]
        return min(vals) if vals else None

    def start(self) -> None:
        self.peak = None
        self._stop.clear()
        if self.source == "nvml":
            self._thread = threading.Thread(target=self._poll_nvml, daemon=True)
            self._thread.start()
        elif self.source == "nvidia-smi":
            self._proc = subprocess.Popen(["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits",
                                           "--id=0", "-lms", "200"], stdout=subprocess.PIPE,
                                          stderr=subprocess.DEVNULL, text=True)
            self._thread = threading.Thread(target=self._poll_smi, daemon=True)
            self._thread.start()

    def _note(self, v) -> None:
        if v is not None and (self.peak is None or v > self.peak):
            self.peak = v

    def _poll_nvml(self) -> None:
        while not self._stop.is_set():
            self._note(self.read())
            self._stop.wait(self.interval)

    def _poll_smi(self) -> None:
        for line in self._proc.stdout:
            try:
                self._note(int(float(line.strip())) * 2**20)
            except ValueError:
                pass

    def stop(self):
        self._stop.set()
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
            self._proc = None
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None
        return self.peak


# ---------------------------------------------------------------- running one engine
class StreamReader(threading.Thread):
    """Copies one pipe to a file; on stderr, time-stamps each new tqdm `steps:` count as it arrives."""

    def __init__(self, pipe, path: Path, parse_steps: bool):
        super().__init__(daemon=True)
        self.pipe, self.path, self.parse_steps = pipe, path, parse_steps
        self.points: list[tuple[int, float]] = []  # (step count, monotonic time of first sight)
        self.total = None
        self.last_bar = ""
        self._seen: set[int] = set()

    def _scan(self, segment: str, now: float) -> None:
        m = STEP_RE.search(segment)
        if not m:
            return
        n, total = int(m.group(1)), int(m.group(2))
        self.total = total
        self.last_bar = segment.strip()
        if n not in self._seen:
            self._seen.add(n)
            self.points.append((n, now))

    def run(self) -> None:
        dec = codecs.getincrementaldecoder("utf-8")(errors="replace")
        pending = ""
        fd = self.pipe.fileno()
        with open(self.path, "wb") as fh:
            while True:
                try:
                    data = os.read(fd, 65536)
                except OSError:
                    break
                if not data:
                    break
                now = time.monotonic()
                fh.write(data)
                fh.flush()
                if not self.parse_steps:
                    continue
                parts = re.split(r"[\r\n]", pending + dec.decode(data))
                pending = parts[-1][-4000:]
                # The bar text is not terminated until the next write: scan the open tail too.
                for seg in parts:
                    if "steps:" in seg:
                        self._scan(seg, now)


def steady_rate(points: list[tuple[int, float]], warmup_frac: float = 0.2) -> dict:
    pts = sorted(points)
    out: dict = {"updates": len(pts)}
    if not pts:
        return out
    n_last, t_last = pts[-1]
    out["steps_seen"] = n_last
    t0 = next((t for n, t in pts if n == 0), None)
    t1 = next((t for n, t in pts if n >= 1), None)
    if t0 is not None and t1 is not None:
        out["first_step_s"] = round(t1 - t0, 3)
    if t0 is not None and n_last > 0:
        out["train_s"] = round(t_last - t0, 3)
        out["mean_it_s_all_steps"] = round(n_last / (t_last - t0), 4) if t_last > t0 else None
    skip = max(1, math.ceil(warmup_frac * n_last))
    start = next(((n, t) for n, t in pts if n >= skip and n < n_last), None)
    if start is None:  # very few updates: fall back to the first count above zero
        start = next(((n, t) for n, t in pts if 0 < n < n_last), None)
    if start is not None and t_last > start[1]:
        out["it_s"] = round((n_last - start[0]) / (t_last - start[1]), 4)
        out["measured_steps"] = f"{start[0]}..{n_last}"
    return out


def lora_layout(path: Path) -> dict:
    """Tensor count and a signature of the (name, shape) set, from the safetensors header (stdlib only)."""
    import hashlib
    import struct

    with open(path, "rb") as fh:
        (n,) = struct.unpack("<Q", fh.read(8))
        header = json.loads(fh.read(n))
    header.pop("__metadata__", None)
    items = sorted((k, tuple(v["shape"]), v["dtype"]) for k, v in header.items())
    sig = hashlib.sha256(repr(items).encode()).hexdigest()[:16]
    return {"tensors": len(items), "signature": sig,
            "te_modules": sum(1 for k, _, _ in items if k.startswith("lora_te") and k.endswith(".alpha")),
            "unet_modules": sum(1 for k, _, _ in items if k.startswith("lora_unet") and k.endswith(".alpha"))}


def tail_text(path: Path, max_chars: int = 6000) -> str:
    try:
        raw = path.read_bytes()[-max_chars * 4:].decode("utf-8", "replace")
    except OSError:
        return ""
    # Keep only the final state of each \r-rewritten line.
    lines = [ln.split("\r")[-1] if "\r" in ln.rstrip("\r") else ln for ln in raw.split("\n")]
    text = "\n".join(ln.rstrip() for ln in lines)
    return text[-max_chars:]


def kill_group(proc: subprocess.Popen) -> None:
    for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue


def engine_env(engine: str, a) -> tuple[dict, list[str], Path]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env.update({
        "PYTHONUNBUFFERED": "1",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "HF_HOME": str(a.work / "hf_home"),  # no accelerate config file: flags only
        "LORA_TRAINER_CLIP_BPE": str(BPE),
        # The GPU box also has jax/flax installed: keep both engines on torch alone,
        # and never let jax preallocate GPU memory if anything imports it.
        "USE_TORCH": "1", "USE_TF": "0", "USE_FLAX": "0", "USE_JAX": "0",
        "XLA_PYTHON_CLIENT_PREALLOCATE": "false", "JAX_PLATFORMS": "cpu",
    })
    if engine.startswith("builtin"):
        paths = [str(REPO), str(a.site_ours), *[p for p in a.extra_ours_path.split(os.pathsep) if p]]
        entry, cwd = OURS_ENTRY, a.work
    else:
        paths = [str(a.sd_scripts), str(a.site_sd), *[p for p in a.extra_sd_path.split(os.pathsep) if p]]
        entry, cwd = str(a.sd_scripts / SD_ENTRY), a.sd_scripts
    env["PYTHONPATH"] = os.pathsep.join(paths)
    return env, [entry], cwd


def run_one(a, sampler: MemSampler, engine: str, batch: int, rank: int, steps: int, timeout: float) -> dict:
    name = f"{engine}_b{batch}_r{rank}"
    run_dir = a.work / "runs" / name
    if run_dir.exists():
        shutil.rmtree(run_dir)
    run_toml, ds_toml = write_configs(run_dir, a.work, a.model, a.res, batch, rank, steps, a.mixed_precision,
                                      compile_=engine == "builtin-compile")
    env, entry, cwd = engine_env(engine, a)
    mem_file = run_dir / "cuda_mem.json"
    env["BENCH_MEM_OUT"] = str(mem_file)
    cmd = [a.python, "-m", "accelerate.commands.launch", "--num_processes", "1", "--num_machines", "1",
           "--mixed_precision", a.mixed_precision, "--dynamo_backend", "no", *a.launch_extra,
           str(REPO / "bench" / "_memwrap.py"), *entry, "--config_file", str(run_toml),
           "--dataset_config", str(ds_toml)]
    rec: dict = {"run": name, "engine": engine, "batch": batch, "rank": rank, "max_train_steps": steps,
                 "resolution": a.res, "mixed_precision": a.mixed_precision, "timeout_s": round(timeout),
                 "cmd": " ".join(cmd), "PYTHONPATH": env["PYTHONPATH"], "cwd": str(cwd)}
    base = sampler.baseline()
    sampler.start()
    log(f"start {name}: {steps} steps, timeout {timeout:.0f} s")
    t_start = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, start_new_session=True)
    out_r = StreamReader(proc.stdout, run_dir / "stdout.txt", parse_steps=False)
    err_r = StreamReader(proc.stderr, run_dir / "stderr.txt", parse_steps=True)
    out_r.start()
    err_r.start()
    timed_out = False
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        kill_group(proc)
    except KeyboardInterrupt:
        kill_group(proc)
        raise
    wall = time.monotonic() - t_start
    out_r.join(10)
    err_r.join(10)
    peak = sampler.stop()
    rec.update({"exit_code": proc.returncode, "timed_out": timed_out, "wall_s": round(wall, 1)})
    rec.update(steady_rate(err_r.points))
    t_bar0 = next((t for n, t in sorted(err_r.points) if n == 0), None)
    if t_bar0 is not None:
        rec["setup_s"] = round(t_bar0 - t_start, 1)  # launch -> empty `steps:` bar (imports, load, latents)
    rec["tqdm_last_bar"] = err_r.last_bar[-200:]
    m = RATE_RE.findall(err_r.last_bar)
    if m:
        v, unit = float(m[-1][0]), m[-1][1]
        rec["tqdm_mean_it_s"] = round(v if unit == "it/s" else (1 / v if v else 0.0), 4)
    if rec.get("it_s") is not None:
        rec["images_s"] = round(rec["it_s"] * batch, 3)
    if peak is not None and base is not None:
        rec["peak_mib_gpu"] = round((peak - base) / 2**20)
        rec["idle_mib_gpu"] = round(base / 2**20)
    rec["mem_source"] = sampler.source
    try:
        cm = json.loads(mem_file.read_text())
        rec["torch_max_allocated_mib"] = round(cm["max_allocated"] / 2**20)
        rec["torch_max_reserved_mib"] = round(cm["max_reserved"] / 2**20)
        rec["gpu_name"] = cm.get("device")
    except (OSError, ValueError, KeyError):
        pass
    lora = sorted((run_dir / "lora").glob("*.safetensors")) if (run_dir / "lora").is_dir() else []
    rec["lora_files"] = [f"{p.name} ({p.stat().st_size} bytes)" for p in lora]
    final = run_dir / "lora" / f"bench_b{batch}_r{rank}.safetensors"
    if final.is_file():
        try:
            rec["lora_layout"] = lora_layout(final)
        except (OSError, ValueError, KeyError) as exc:
            rec["lora_layout"] = {"error": repr(exc)}
    complete = rec.get("steps_seen") == steps
    if timed_out:
        rec["status"] = "timeout" + (" (numbers from the steps before the kill)" if rec.get("it_s") else "")
    elif proc.returncode != 0:
        rec["status"] = f"failed (exit {proc.returncode})"
    elif not complete:
        rec["status"] = f"incomplete: saw {rec.get('steps_seen', 0)}/{steps} steps"
    else:
        rec["status"] = "ok"
    if rec["status"] != "ok":
        rec["stderr_tail"] = tail_text(run_dir / "stderr.txt", 4000)
        rec["stdout_tail"] = tail_text(run_dir / "stdout.txt", 1500)
    log(f"end {name}: {rec['status']} it/s={rec.get('it_s')} images/s={rec.get('images_s')} "
        f"peak={rec.get('peak_mib_gpu')} MiB torch_alloc={rec.get('torch_max_allocated_mib')} MiB wall={wall:.1f} s")
    return rec


# ---------------------------------------------------------------- reporting
def env_versions(a, engine: str) -> dict:
    env, _, cwd = engine_env(engine, a)
    names = ["torch", "torchvision", "accelerate", "transformers", "diffusers", "huggingface_hub", "tokenizers",
             "peft", "safetensors", "numpy", "tqdm"]
    code = ("import importlib.metadata as m, json, sys\nout = {'python': sys.version.split()[0]}\n"
            f"for n in {names!r}:\n"
            "    try: out[n] = m.version(n)\n"
            "    except Exception: out[n] = None\n"
            "print(json.dumps(out))")
    try:
        r = subprocess.run([a.python, "-c", code], env=env, cwd=cwd, capture_output=True, text=True, timeout=60)
        return json.loads(r.stdout.strip().splitlines()[-1])
    except Exception as exc:
        return {"error": repr(exc)}


def fmt(v, nd=2) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.{nd}f}"
    return str(v)


def ratios(records: list[dict]) -> list[dict]:
    out = []
    keys = sorted({(r["batch"], r["rank"]) for r in records})
    for batch, rank in keys:
        by = {r["engine"]: r for r in records if (r["batch"], r["rank"]) == (batch, rank)}
        b, s = by.get("builtin"), by.get("sd-scripts")
        row = {"batch": batch, "rank": rank}
        if b and s and b.get("it_s") and s.get("it_s"):
            row["it_s_builtin_over_sd"] = round(b["it_s"] / s["it_s"], 3)
        if b and s and b.get("peak_mib_gpu") and s.get("peak_mib_gpu"):
            row["peak_mib_builtin_over_sd"] = round(b["peak_mib_gpu"] / s["peak_mib_gpu"], 3)
        if b and s and b.get("torch_max_allocated_mib") and s.get("torch_max_allocated_mib"):
            row["torch_alloc_builtin_over_sd"] = round(b["torch_max_allocated_mib"] / s["torch_max_allocated_mib"], 3)
        lb, ls = (b or {}).get("lora_layout") or {}, (s or {}).get("lora_layout") or {}
        if lb.get("signature") and ls.get("signature"):
            row["same_lora_layout"] = lb["signature"] == ls["signature"]
        if b and s and b.get("wall_s") and s.get("wall_s"):
            row["wall_builtin_over_sd"] = round(b["wall_s"] / s["wall_s"], 3)
        out.append(row)
    return out


def write_results(a, meta: dict, records: list[dict]) -> None:
    a.out.mkdir(parents=True, exist_ok=True)
    data = {**meta, "runs": records, "ratios": ratios(records), "written": _dt.datetime.now().isoformat()}
    tmp = a.out / "results.json.tmp"
    tmp.write_text(json.dumps(data, indent=1), encoding="utf-8")
    os.replace(tmp, a.out / "results.json")

    lines = [f"# Builtin engine vs sd-scripts: {meta.get('gpu') or 'CPU'}, {a.res} px, {a.mixed_precision}",
             "",
             f"SD1.5 architecture, random weights; LoRA on text encoder + U-Net, alpha 16, AdamW lr 1e-4 constant, "
             f"cache_latents, sdpa, no gradient checkpointing, seed 42; 16 images x 100 repeats. it/s is steady "
             f"state (first 20 % of steps excluded); peak GPU = NVML used minus idle (includes the CUDA context); "
             f"torch alloc = torch.cuda.max_memory_allocated at exit. Started {meta.get('started')}.",
             "",
             "| engine | batch | rank | steps | it/s | images/s | peak GPU MiB | torch alloc MiB | setup s | first step s | wall s | status |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in records:
        lines.append(f"| {r['engine']} | {r['batch']} | {r['rank']} | {r.get('steps_seen', 0)}/{r['max_train_steps']} "
                     f"| {fmt(r.get('it_s'))} | {fmt(r.get('images_s'))} | {fmt(r.get('peak_mib_gpu'))} "
                     f"| {fmt(r.get('torch_max_allocated_mib'))} | {fmt(r.get('setup_s'), 1)} | {fmt(r.get('first_step_s'))} "
                     f"| {fmt(r.get('wall_s'), 1)} "
                     f"| {r['status']} |")
    lines += ["", "| batch | rank | it/s builtin / sd-scripts | peak GPU builtin / sd-scripts | torch alloc ratio | wall ratio "
              "| same LoRA keys+shapes |",
              "|---|---|---|---|---|---|---|"]
    for row in ratios(records):
        lines.append(f"| {row['batch']} | {row['rank']} | {fmt(row.get('it_s_builtin_over_sd'), 3)} "
                     f"| {fmt(row.get('peak_mib_builtin_over_sd'), 3)} | {fmt(row.get('torch_alloc_builtin_over_sd'), 3)} "
                     f"| {fmt(row.get('wall_builtin_over_sd'), 3)} | {fmt(row.get('same_lora_layout'))} |")
    lines += ["", "Versions:", "", "```", json.dumps(meta.get("versions"), indent=1), "```", ""]
    skipped = meta.get("skipped") or []
    if skipped:
        lines += ["Skipped (time): " + ", ".join(skipped), ""]
    (a.out / "results.md").write_text("\n".join(lines), encoding="utf-8")

    parts = []
    for r in records:
        run_dir = a.work / "runs" / r["run"]
        parts.append(f"===== {r['run']}: {r['status']}\n"
                     f"$ cd {r.get('cwd')} && PYTHONPATH={r.get('PYTHONPATH')} {r.get('cmd')}\n"
                     f"--- stdout (tail)\n{tail_text(run_dir / 'stdout.txt', 2500)}\n"
                     f"--- stderr (tail)\n{tail_text(run_dir / 'stderr.txt', 5000)}\n")
    (a.out / "runs_tail.txt").write_text("\n".join(parts), encoding="utf-8")


# ---------------------------------------------------------------- main
def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=Path(os.environ.get("OUT") or REPO / "bench" / "out" / "gpu_engines"))
    p.add_argument("--work", type=Path, default=Path("/tmp/bench_gpu"))
    p.add_argument("--model", type=Path, default=None,
                   help="base checkpoint; built (random SD1.5, fp16) when missing. Default <work>/sd15-random.safetensors")
    p.add_argument("--python", default=sys.executable, help="interpreter for the engines (default: this one)")
    p.add_argument("--site-sd", type=Path, default=Path("/tmp/site_sd"))
    p.add_argument("--site-ours", type=Path, default=Path("/tmp/site_ours"))
    p.add_argument("--sd-scripts", type=Path, default=CARRY / "sd-scripts")
    p.add_argument("--extra-sd-path", default="", help="extra PYTHONPATH for sd-scripts (CPU smoke only)")
    p.add_argument("--extra-ours-path", default="", help="extra PYTHONPATH for the builtin engine (CPU smoke only)")
    p.add_argument("--deadline-s", type=float, default=None,
                   help="stop starting runs / cut runs so the script ends by then (default 530 GPU, 1500 smoke)")
    p.add_argument("--only", default="", help="comma-separated run names, e.g. builtin_b1_r32,sd-scripts_b1_r32")
    p.add_argument("--cpu-smoke", action="store_true", help="CPU check: 128 px, 2 steps, batch 1, fp32")
    p.add_argument("--smoke-steps", type=int, default=2)
    p.add_argument("--smoke-mixed-precision", default="no", choices=["no", "bf16"],
                   help="CPU smoke: bf16 exercises the GPU runs' dtype path (slow on CPU)")
    p.add_argument("--_prepare", default=None, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    a.model = a.model or a.work / "sd15-random.safetensors"
    return a


def main(argv=None) -> int:
    a = parse_args(argv)
    if a._prepare:  # child: build the model, tokenizer cache and dataset
        spec = json.loads(a._prepare)
        info = prepare(Path(spec["work"]), spec["res"], 16, Path(spec["model"]), spec["device"])
        print("PREPARE_JSON " + json.dumps(info), flush=True)
        return 0

    t_begin = time.monotonic()
    deadline = t_begin + (a.deadline_s or (1500 if a.cpu_smoke else 530))
    if a.cpu_smoke:
        a.res, a.mixed_precision = 128, a.smoke_mixed_precision
        a.launch_extra = ["--num_cpu_threads_per_process", str(os.cpu_count() or 1)]
        plan = [(e, 1, 32, a.smoke_steps, 900) for e in ENGINES]
    else:
        a.res, a.mixed_precision, a.launch_extra = 512, "bf16", []
        plan = list(GPU_PLAN)
    if a.only:
        wanted = {s.strip() for s in a.only.split(",") if s.strip()}
        plan = [p for p in plan if f"{p[0]}_b{p[1]}_r{p[2]}" in wanted]
    a.work.mkdir(parents=True, exist_ok=True)
    a.out.mkdir(parents=True, exist_ok=True)
    meta: dict = {"started": _dt.datetime.now().isoformat(timespec="seconds"), "mode": "cpu-smoke" if a.cpu_smoke else "gpu",
                  "resolution": a.res, "mixed_precision": a.mixed_precision, "python": a.python,
                  "model": str(a.model), "plan": [f"{e}_b{b}_r{r} ({s} steps)" for e, b, r, s, _ in plan]}
    problems = [str(p) for p in (a.sd_scripts / SD_ENTRY, BPE, a.site_sd, a.site_ours) if not p.exists()]
    if problems:
        log(f"WARNING: missing {problems} (the runs that need them will fail and be recorded)")
    meta["versions"] = {e: env_versions(a, e) for e in ENGINES}
    log(f"versions: {json.dumps(meta['versions'])}")

    # Prepare in a child with the builtin engine's environment (this process never touches CUDA).
    env, _, _ = engine_env("builtin", a)
    spec = json.dumps({"work": str(a.work), "res": a.res, "model": str(a.model),
                       "device": "cpu" if a.cpu_smoke else "cuda"})
    log("prepare: tokenizer cache, dataset, random SD1.5 checkpoint")
    t0 = time.monotonic()
    try:
        r = subprocess.run([a.python, str(Path(__file__).resolve()), "--work", str(a.work), "--_prepare", spec],
                           env=env, cwd=a.work, capture_output=True, text=True,
                           timeout=max(60.0, min(420.0, deadline - time.monotonic() - 120)))
        ok = r.returncode == 0 and "PREPARE_JSON " in r.stdout
        if ok:
            meta["prepare"] = json.loads(r.stdout.split("PREPARE_JSON ", 1)[1].splitlines()[0])
        else:
            meta["prepare_error"] = (r.stdout[-2000:] + "\n" + r.stderr[-6000:]).strip()
    except subprocess.TimeoutExpired as exc:
        ok = False
        meta["prepare_error"] = f"timeout after {exc.timeout:.0f} s"
    meta["prepare_s"] = round(time.monotonic() - t0, 1)
    meta["gpu"] = (meta.get("prepare") or {}).get("gpu")
    log(f"prepare {'ok' if ok else 'FAILED'} in {meta['prepare_s']} s: {meta.get('prepare') or meta.get('prepare_error')}")
    records: list[dict] = []
    if not ok:
        write_results(a, meta, records)
        return 1

    sampler = MemSampler()
    meta["mem_source"] = sampler.source
    log(f"GPU memory source: {sampler.source}")
    skipped = meta["skipped"] = []
    write_results(a, meta, records)
    for engine, batch, rank, steps, cap in plan:
        left = deadline - time.monotonic()
        name = f"{engine}_b{batch}_r{rank}"
        if left < (MIN_START_S if not a.cpu_smoke else 30):
            skipped.append(name)
            log(f"skip {name}: {left:.0f} s left")
            continue
        try:
            rec = run_one(a, sampler, engine, batch, rank, steps, min(cap, left - 10))
        except Exception as exc:  # a broken run never stops the others
            rec = {"run": name, "engine": engine, "batch": batch, "rank": rank, "max_train_steps": steps,
                   "status": f"bench error: {exc!r}"}
        records.append(rec)
        write_results(a, meta, records)
        time.sleep(1.0)  # let the driver release the memory before the next idle reading
    meta["total_s"] = round(time.monotonic() - t_begin, 1)
    write_results(a, meta, records)
    log(f"done in {meta['total_s']} s; results in {a.out}")
    print((a.out / "results.md").read_text(encoding="utf-8"), flush=True)
    return 0 if records and all(r["status"] == "ok" for r in records) else 3


if __name__ == "__main__":
    sys.exit(main())

"""Build a real AUTOMATIC1111 web UI v1.10.1 that runs on CPU, with this extension installed the
A1111 way, for the opt-in host test tier. Nothing of the host lives in this repository.

    python tests/host/setup_a1111.py --a1111 /work/hosts/a1111 --repositories /work/hosts/repositories \
        --models /work/hosts/models --python python3.11 [--sd-scripts /work/hosts/sd-scripts] [--smoke]

Steps (each skipped when already done; what it does is printed):
 1. checkouts: a missing --a1111 / repositories/<name> / --sd-scripts folder is checked out at the
    commit A1111 v1.10.1 pins (sd-scripts: v0.10.1) from a LOCAL git directory given with
    --source NAME=GITDIR (never from the network); blobs missing from a partial mirror (pictures)
    are skipped. Existing folders are used as they are.
 2. <a1111>/repositories: a symlink to --repositories (or per-name links for --repo NAME=DIR).
 3. <a1111>/venv from --python: A1111's requirements_versions.txt with setuptools 80.9.0 instead
    of 69.5.1 (69.5.1 conflicts with new torch; >= 81 has no pkg_resources, which
    pytorch_lightning and clip import), --torch/--torchvision builds that run on CPU here, and
    `openai-clip` with --no-deps (k-diffusion imports `clip`, which A1111 would fetch from GitHub).
 4. the extension in <a1111>/extensions/<name> (symlink, or --copy-extension), then A1111's own
    `launch_utils.run_extension_installer(<dir>)` in A1111's venv; `pip freeze --all` before and
    after are compared.
 5. <models>/Stable-diffusion: the demo model (`python -m lib_lora_trainer demo-model install`)
    and a full-size SD1.5-architecture checkpoint with random weights (tests/host/random_sd15.py),
    both with a .yaml pointing A1111 at a local text-encoder folder (no Hugging Face cache).
 6. optional --sd-scripts: its own venv at <sd-scripts>/venv (requirements.txt + the same torch).
 7. prints the command that starts A1111 on CPU (tests/host/a1111_host.py builds it);
    --smoke starts it once and checks the tab, the extension's API and a txt2img.
Standard library only; every subprocess gets an argument list; only pip reaches a registry.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(HERE))
import a1111_host  # noqa: E402  (sibling module, standard library only)

A1111_COMMIT = "82a973c04367123ae98bd9abdf80d9eda9b910e2"  # v1.10.1
SD_SCRIPTS_COMMIT = "ae72efb92babe89ff8e70f057e42db68440e8d61"  # v0.10.1
# modules/launch_utils.py of v1.10.1: repositories/<name> and the commit it clones.
REPOSITORIES = {
    "stable-diffusion-webui-assets": "6f7db241d2f8ba7457bac5ca9753331f0c266917",
    "stable-diffusion-stability-ai": "cf1d67a6fd5ea1aa600c4df58e5b47da45f6bdbf",
    "generative-models": "45c443b316737a4ab6e40413d7794a7f5657c19f",
    "k-diffusion": "ab527a9a6d347f364e3d185ba6d714e22d80cb3c",
    "BLIP": "48211a1594f1321b00f14c9f7a5b4813144b2fb9",
}
# A file per checkout that A1111 (modules/paths.py) or we need: a folder without it is not one.
REPOSITORY_MARKERS = {
    "stable-diffusion-webui-assets": "fonts",
    "stable-diffusion-stability-ai": "ldm/models/diffusion/ddpm.py",
    "generative-models": "sgm/__init__.py",
    "k-diffusion": "k_diffusion/sampling.py",
    "BLIP": "models/blip.py",
}
SETUPTOOLS = "setuptools==80.9.0"
OPENAI_CLIP = "openai-clip==1.0.1"
VENV_STAMP = ".lora_trainer_host_setup.json"
DEFAULT_EXTENSION_NAME = "sd-webui-lora-trainer"
RANDOM_SD15 = "sd15-random.safetensors"
DEMO_MODEL = "cartoon128.safetensors"
# Names never copied into <a1111>/extensions with --copy-extension (relative to the extension root).
COPY_IGNORED = {".git", ".venv", "venv", "__pycache__", ".pytest_cache", ".deps", "data", "out", "bench/out",
                "tests/ui/artifacts", "tests/artifacts"}


def say(msg: str) -> None:
    print(f"[setup_a1111] {msg}", flush=True)


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in a1111_host.DROPPED_ENV}
    env.update(extra)
    return env


def run(argv, cwd=None, env=None, capture: bool = False, check: bool = True) -> subprocess.CompletedProcess:
    argv = [str(a) for a in argv]
    say(f"$ {' '.join(argv)}" + (f"   (in {cwd})" if cwd else ""))
    proc = subprocess.run(argv, cwd=None if cwd is None else str(cwd), env=clean_env() if env is None else env,
                          stdin=subprocess.DEVNULL, text=True, errors="replace",
                          capture_output=capture)
    if check and proc.returncode != 0:
        detail = f"\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}" if capture else ""
        raise SystemExit(f"[setup_a1111] FAILED ({proc.returncode}): {' '.join(argv)}{detail}")
    return proc


# --- 1. checkouts from local git directories --------------------------------------------------

def git(git_dir: Path, *args: str, **kw) -> subprocess.CompletedProcess:
    return run(["git", f"--git-dir={git_dir}", *args], capture=True, **kw)


def head_of(folder: Path) -> str | None:
    if not (folder / ".git").exists():
        return None
    proc = subprocess.run(["git", "-C", str(folder), "rev-parse", "HEAD"], capture_output=True, text=True,
                          stdin=subprocess.DEVNULL)
    return proc.stdout.strip() if proc.returncode == 0 else None


def checkout(source_git_dir: Path, commit: str, dest: Path) -> None:
    """`git clone --shared` of a local git directory at `commit` into dest. When the object store
    lacks some blobs (a partial mirror), the tree is written file by file and the missing blobs
    are skipped (they are listed). Never fetches anything."""
    tmp = dest.with_name(dest.name + ".partial")
    if tmp.exists():
        shutil.rmtree(tmp)
    dest.parent.mkdir(parents=True, exist_ok=True)
    run(["git", "clone", "-q", "--shared", "--no-checkout", str(source_git_dir), str(tmp)], capture=True)
    gd = tmp / ".git"
    if run(["git", "-C", str(tmp), "checkout", "-q", "--detach", commit], capture=True, check=False).returncode != 0:
        say(f"plain checkout failed (blobs missing in {source_git_dir}?): writing the tree file by file")
        skipped = write_tree(gd, commit, tmp)
        git(gd, "update-ref", "--no-deref", "HEAD", commit)
        git(gd, "read-tree", commit)
    else:  # git may leave files whose blobs are missing out and still succeed
        skipped = [f for f in run(["git", "-C", str(tmp), "ls-files", "-z", "--deleted"],
                                  capture=True).stdout.split("\0") if f]
    if skipped:
        say(f"skipped {len(skipped)} file(s) whose blobs are missing: {', '.join(skipped)}")
    tmp.rename(dest)
    say(f"checked out {dest} at {commit[:10]}")


def write_tree(git_dir: Path, commit: str, dest: Path, keep=None) -> list[str]:
    """Write the tree of `commit` (any tree-ish, e.g. "<commit>:webui") into dest, blob by blob;
    returns the paths whose blobs are missing. keep(path) -> bool, when given, picks the paths."""
    listing = git(git_dir, "ls-tree", "-r", "-z", "--full-tree", commit).stdout.split("\0")
    entries = []
    for item in filter(None, listing):
        meta, path = item.split("\t", 1)
        mode, kind, sha = meta.split()
        if kind == "blob" and (keep is None or keep(path)):
            entries.append((mode, sha, path))
    skipped = []
    batch = subprocess.Popen(["git", f"--git-dir={git_dir}", "cat-file", "--batch"], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE)
    try:
        for mode, sha, path in entries:
            batch.stdin.write(sha.encode() + b"\n")
            batch.stdin.flush()
            header = batch.stdout.readline().decode().split()
            if len(header) < 3 or header[1] != "blob":  # "<sha> missing"
                skipped.append(path)
                continue
            data = batch.stdout.read(int(header[2]))
            batch.stdout.read(1)  # the newline after the contents
            target = dest / path
            target.parent.mkdir(parents=True, exist_ok=True)
            if mode == "120000":
                os.symlink(data.decode(), target)
            else:
                target.write_bytes(data)
                if mode == "100755":
                    target.chmod(0o755)
    finally:
        batch.stdin.close()
        batch.wait()
    return skipped


def ensure_checkout(dest: Path, commit: str, sources: dict[str, Path], name: str, marker: str) -> None:
    if (dest / marker).exists():
        head = head_of(dest)
        note = "" if head in (None, commit) else f" (WARNING: HEAD {head[:10]}, A1111 pins {commit[:10]})"
        say(f"{name}: {dest} is there{note}")
        return
    if dest.exists() and any(dest.iterdir()):
        raise SystemExit(f"[setup_a1111] {dest} exists but has no {marker}: not a {name} checkout")
    if name not in sources:
        raise SystemExit(f"[setup_a1111] {dest} is missing: check {name} out at {commit} or give "
                         f"--source {name}=<local git dir>")
    checkout(sources[name], commit, dest)


# --- 2. repositories/ ---------------------------------------------------------------------------

def link_repositories(a1111: Path, repos: dict[str, Path]) -> None:
    target = a1111 / "repositories"
    folders = {Path(p).resolve().parent for p in repos.values()}
    same_parent = len(folders) == 1 and all(Path(p).name == n for n, p in repos.items())
    if same_parent and not (target.exists() and not target.is_symlink()):
        parent = folders.pop()
        if target.is_symlink() and Path(os.readlink(target)) == parent:
            say(f"repositories: {target} -> {parent} is there")
            return
        if target.is_symlink():
            target.unlink()
        target.symlink_to(parent, target_is_directory=True)
        say(f"repositories: linked {target} -> {parent}")
        return
    target.mkdir(exist_ok=True)
    for name, path in repos.items():
        link = target / name
        if link.is_symlink() and Path(os.readlink(link)) == Path(path).resolve():
            continue
        if link.is_symlink():
            link.unlink()
        elif link.exists():
            say(f"repositories: {link} is a real folder, kept")
            continue
        link.symlink_to(Path(path).resolve(), target_is_directory=True)
        say(f"repositories: linked {link} -> {path}")


# --- 3. A1111's venv --------------------------------------------------------------------------

def adjusted_requirements(text: str, torch_spec: str, torchvision_spec: str) -> str:
    """A1111's requirements_versions.txt with the substitutions this host needs."""
    out = []
    for line in text.splitlines():
        name = re.split(r"[=<>!~;\s\[#]", line.strip(), maxsplit=1)[0].lower().replace("_", "-")
        if name == "setuptools":
            out.append(f"{SETUPTOOLS}  # was: {line.strip()} (conflicts with new torch; >= 81 lacks pkg_resources)")
        elif name == "torch":
            out.append(f"{torch_spec}  # was: {line.strip()}")
        elif name == "torchvision":
            continue
        else:
            out.append(line)
    out.append(f"{torchvision_spec}  # A1111 imports it; must match the torch build")
    return "\n".join(out) + "\n"


def stamp_matches(venv: Path, key: dict) -> bool:
    try:
        return json.loads((venv / VENV_STAMP).read_text(encoding="utf-8")) == key
    except (OSError, ValueError):
        return False


def write_stamp(venv: Path, key: dict) -> None:
    (venv / VENV_STAMP).write_text(json.dumps(key, indent=1) + "\n", encoding="utf-8")


def base_python_version(python: str) -> str:
    return run([python, "-c", "import sys; print(sys.version.split()[0])"], capture=True).stdout.strip()


def make_venv(python: str, venv: Path) -> Path:
    py = venv / "bin" / "python"
    if not py.exists():
        run([python, "-m", "venv", str(venv)])
    return py


A1111_IMPORT_CHECK = """
import pkg_resources, torch, torchvision, torchvision.ops, clip, open_clip, gradio, pytorch_lightning, transformers
boxes = torch.tensor([[0., 0., 1., 1.], [0., 0., 1., 1.]])
torchvision.ops.nms(boxes, torch.tensor([1., .5]), .5)
print('torch', torch.__version__, 'torchvision', torchvision.__version__, 'gradio', gradio.__version__,
      'transformers', transformers.__version__)
"""


def build_a1111_venv(a1111: Path, python: str, torch_spec: str, torchvision_spec: str) -> Path:
    venv = a1111 / "venv"
    reqs = adjusted_requirements((a1111 / "requirements_versions.txt").read_text(encoding="utf-8"),
                                 torch_spec, torchvision_spec)
    key = {"python": base_python_version(python), "requirements": hashlib.sha256(reqs.encode()).hexdigest(),
           "extra": [OPENAI_CLIP + " --no-deps"]}
    py = venv / "bin" / "python"
    if py.exists() and stamp_matches(venv, key):
        say(f"A1111 venv: {venv} is up to date (stamp {VENV_STAMP})")
        return py
    t0 = time.monotonic()
    py = make_venv(python, venv)
    req_file = venv / "requirements_lora_trainer_host.txt"
    req_file.write_text(reqs, encoding="utf-8")
    say(f"A1111 venv: installing {req_file} (A1111's pins, substitutions marked '# was:')")
    run([py, "-m", "pip", "install", "--disable-pip-version-check", "--prefer-binary", "-r", req_file])
    run([py, "-m", "pip", "install", "--disable-pip-version-check", "--no-deps", OPENAI_CLIP])
    out = run([py, "-c", A1111_IMPORT_CHECK], capture=True).stdout.strip()
    say(f"A1111 venv: imports work ({out.splitlines()[-1] if out else ''}) in {time.monotonic() - t0:.0f} s")
    write_stamp(venv, key)
    return py


# --- 4. the extension, installed the A1111 way ---------------------------------------------

RUN_INSTALLER = """
import sys
ext = sys.argv[1]
sys.argv = sys.argv[:1]
from modules import launch_utils
launch_utils.run_extension_installer(ext)
"""


def _copy_ignore(root: Path):
    def ignore(folder, names):
        rel = Path(folder).resolve().relative_to(root)
        return {n for n in names if n in COPY_IGNORED or (rel / n).as_posix() in COPY_IGNORED}
    return ignore


def place_extension(a1111: Path, source: Path, name: str, copy: bool) -> Path:
    dest = a1111 / "extensions" / name
    dest.parent.mkdir(exist_ok=True)
    if copy:
        if dest.is_symlink():
            dest.unlink()
        elif dest.exists():
            shutil.rmtree(dest)
        shutil.copytree(source, dest, symlinks=True, ignore=_copy_ignore(source.resolve()))
        say(f"extension: copied {source} -> {dest}")
        return dest
    if dest.is_symlink() and Path(os.readlink(dest)) == source:
        say(f"extension: {dest} -> {source} is there")
        return dest
    if dest.is_symlink():
        dest.unlink()
    elif dest.exists():
        raise SystemExit(f"[setup_a1111] {dest} is a real folder; remove it or use --copy-extension")
    dest.symlink_to(source, target_is_directory=True)
    say(f"extension: linked {dest} -> {source}")
    return dest


def pip_freeze(py: Path) -> list[str]:
    return run([py, "-m", "pip", "freeze", "--all", "--disable-pip-version-check"], capture=True).stdout.splitlines()


def run_installer(a1111: Path, py: Path, ext_dir: Path) -> None:
    before = pip_freeze(py)
    t0 = time.monotonic()
    proc = run([py, "-c", RUN_INSTALLER, str(ext_dir)], cwd=a1111, capture=True, check=False)
    output = (proc.stdout + proc.stderr).strip()
    for line in output.splitlines():
        say(f"  install.py | {line}")
    if proc.returncode != 0 or "Error running install.py" in output or "Couldn't install" in output:
        raise SystemExit("[setup_a1111] the extension's install.py failed under A1111's run_extension_installer")
    after = pip_freeze(py)
    if before != after:
        diff = sorted(set(before) ^ set(after))
        raise SystemExit(f"[setup_a1111] install.py changed A1111's venv: {diff}")
    say(f"extension: A1111's run_extension_installer ran in {time.monotonic() - t0:.1f} s; "
        f"pip freeze --all unchanged ({len(after)} lines)")


# --- 5. models ----------------------------------------------------------------------------

def install_models(models: Path, a1111: Path, extension: Path, trainer_python: Path, random_sd15: bool) -> dict:
    sd_dir, lora_dir = models / "Stable-diffusion", models / "Lora"
    sd_dir.mkdir(parents=True, exist_ok=True)
    lora_dir.mkdir(parents=True, exist_ok=True)
    env = clean_env(PYTHONPATH=str(extension), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    run([trainer_python, "-m", "lib_lora_trainer", "demo-model", "install", sd_dir], cwd=extension, env=env)
    out = {"ckpt_dir": sd_dir, "lora_dir": lora_dir, "demo": sd_dir / DEMO_MODEL}
    if random_sd15:
        run([trainer_python, HERE / "random_sd15.py", sd_dir / RANDOM_SD15,
             "--ldm-yaml", a1111 / "configs" / "v1-inference.yaml"], cwd=extension, env=env)
        out["sd15"] = sd_dir / RANDOM_SD15
    return out


# --- 6. sd-scripts' venv ------------------------------------------------------------------

def build_sd_scripts_venv(checkout_dir: Path, python: str, torch_spec: str, torchvision_spec: str) -> Path:
    venv = checkout_dir / "venv"
    reqs = (checkout_dir / "requirements.txt").read_text(encoding="utf-8")
    key = {"python": base_python_version(python), "requirements": hashlib.sha256(reqs.encode()).hexdigest(),
           "extra": [torch_spec, torchvision_spec]}
    py = venv / "bin" / "python"
    if py.exists() and stamp_matches(venv, key):
        say(f"sd-scripts venv: {venv} is up to date (stamp {VENV_STAMP})")
    else:
        t0 = time.monotonic()
        py = make_venv(python, venv)
        # requirements.txt ends with `-e .` (sd-scripts' own `library`): run from the checkout.
        run([py, "-m", "pip", "install", "--disable-pip-version-check", "--prefer-binary",
             torch_spec, torchvision_spec, "-r", "requirements.txt"], cwd=checkout_dir)
        write_stamp(venv, key)
        say(f"sd-scripts venv: installed in {time.monotonic() - t0:.0f} s")
    out = run([py, "-c", "import library.train_util, torch, torchvision, accelerate, diffusers, transformers; "
                         "print('torch', torch.__version__, 'torchvision', torchvision.__version__, "
                         "'diffusers', diffusers.__version__, 'transformers', transformers.__version__)"],
              cwd=checkout_dir, capture=True).stdout.strip().splitlines()
    say(f"sd-scripts venv: `import library.train_util` works ({out[-1] if out else ''})")
    return py


# --- 7. the start command and the smoke start -----------------------------------------------

def png_size(data: bytes) -> tuple[int, int]:
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG")
    return struct.unpack(">II", data[16:24])


def txt2img(host: "a1111_host.A1111Process", label: str, params: dict, model: str) -> bool:
    payload = {"prompt": "a cartoon face", "negative_prompt": "", "seed": 1, "sampler_name": "Euler",
               "cfg_scale": 5, **params}
    t0 = time.monotonic()
    status, body = a1111_host.request_json(host.url + "/sdapi/v1/txt2img", payload, timeout_s=900)
    took = time.monotonic() - t0
    images = body.get("images") if isinstance(body, dict) else None
    if status != 200 or not images:
        say(f"smoke: POST /sdapi/v1/txt2img ({label}) -> {status} in {took:.1f} s: {str(body)[:500]}")
        return False
    size = png_size(base64.b64decode(images[0].split(",", 1)[-1]))
    used = json.loads(body.get("info") or "{}").get("sd_model_name")
    say(f"smoke: POST /sdapi/v1/txt2img ({label}, {params['width']}x{params['height']}, {params['steps']} steps) "
        f"-> 200 in {took:.1f} s, {len(images)} image(s) of {size[0]}x{size[1]}, model {used}")
    return used == model


def smoke(a1111: Path, port: int, paths: dict, trainer_python: Path, sd_scripts: Path | None,
          timeout_s: float, sd15: bool = False) -> bool:
    """Start A1111 once from a clean data dir; check the tab, the extension's API and a txt2img."""
    work = Path(tempfile.mkdtemp(prefix="a1111-smoke-"))
    argv, env = a1111_host.start_command(a1111, port=port, ckpt_dir=paths["ckpt_dir"], lora_dir=paths["lora_dir"],
                                         ckpt=paths["demo"], data_dir=work / "lora-trainer-data",
                                         trainer_python=trainer_python, sd_scripts=sd_scripts,
                                         settings_dir=work / "settings")
    (work / "settings").mkdir()
    say(f"smoke: starting A1111 (log {work / 'a1111.log'})")
    ok = True
    with a1111_host.A1111Process(argv, env, cwd=a1111, log_path=work / "a1111.log") as host:
        line = host.wait_ready(timeout_s)
        say(f"smoke: ready after {host.ready_after_s} s: {line}")
        status, body = a1111_host.request_json(host.url + "/lora-trainer/v1/presets", timeout_s=60)
        presets = body.get("presets") if isinstance(body, dict) else None
        shown = [p.get("id") for p in presets if isinstance(p, dict)] if isinstance(presets, list) else str(body)[:300]
        say(f"smoke: GET /lora-trainer/v1/presets -> {status}, presets {shown}")
        ok &= status == 200
        status, body = a1111_host.request_json(host.url + "/config", timeout_s=60)
        has_tab = status == 200 and "Train LoRA" in json.dumps(body)
        say(f"smoke: GET /config -> {status}, Train LoRA tab {'present' if has_tab else 'MISSING'}")
        ok &= has_tab
        ok &= txt2img(host, "demo model", {"width": 128, "height": 128, "steps": 4}, "cartoon128")
        if sd15:  # the random full-size SD1.5 through its .yaml (A1111 switches models, then back)
            ok &= txt2img(host, "random SD1.5", {"width": 64, "height": 64, "steps": 1,
                                                 "override_settings": {"sd_model_checkpoint": "sd15-random"}},
                          "sd15-random")
        for text in host.tail(400).splitlines():  # A1111's error reports and exception lines
            if text.startswith("*** ") or re.match(r"^\s*[\w.]*(Error|Exception): ", text):
                say(f"smoke: log: {text.strip()}")
    say(f"smoke: stopped; {'all checks passed' if ok else 'CHECKS FAILED'} (log {work / 'a1111.log'})")
    return ok


def parse_pairs(items: list[str], flag: str) -> dict[str, Path]:
    out = {}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise SystemExit(f"[setup_a1111] {flag} wants NAME=PATH, got {item!r}")
        out[name] = Path(path).expanduser().resolve()
    return out


def add_host_args(p: argparse.ArgumentParser, *, port: int, data_dir_default: str, trainer_python_help: str,
                  torch_help: str) -> None:
    """The options every host setup script here takes (A1111's and Forge Neo's)."""
    p.add_argument("--extension", type=Path, default=REPO, help="this extension's folder (default: this repository)")
    p.add_argument("--extension-name", default=DEFAULT_EXTENSION_NAME)
    p.add_argument("--copy-extension", action="store_true", help="copy into extensions/ instead of a symlink")
    p.add_argument("--trainer-python", type=Path, default=REPO / ".venv" / "bin" / "python",
                   help=trainer_python_help)
    p.add_argument("--torch", default="torch==2.14.1", help=torch_help)
    p.add_argument("--torchvision", default="torchvision==0.29.1", help="the torchvision that matches --torch")
    p.add_argument("--port", type=int, default=port, help="port in the printed start command and for --smoke")
    p.add_argument("--data-dir", type=Path,
                   help=f"LORA_TRAINER_DATA_DIR in the printed command (default {data_dir_default})")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("--a1111", type=Path, required=True, help="A1111 v1.10.1 checkout (made from --source a1111=GITDIR if missing)")
    p.add_argument("--repositories", type=Path, help="folder holding the five repositories/ checkouts")
    p.add_argument("--repo", action="append", default=[], metavar="NAME=DIR",
                   help=f"one checkout by name ({', '.join(REPOSITORIES)}); overrides --repositories")
    p.add_argument("--source", action="append", default=[], metavar="NAME=GITDIR",
                   help="local git directory to check a MISSING folder out of (names: a1111, sd-scripts, "
                        "and the repositories' names)")
    p.add_argument("--python", default=sys.executable, help="base interpreter for the venvs (Python 3.10/3.11)")
    p.add_argument("--models", type=Path, required=True, help="gets Stable-diffusion/ and Lora/")
    add_host_args(p, port=7860, data_dir_default="<a1111>/../lora-trainer-data",
                  trainer_python_help="the project's Python (make env), used for the models and as "
                                      "LORA_TRAINER_PYTHON",
                  torch_help="torch requirement for both venvs")
    p.add_argument("--no-random-sd15", action="store_true", help="skip the 2 GB random SD1.5 checkpoint")
    p.add_argument("--sd-scripts", type=Path, help="sd-scripts v0.10.1 checkout: gets its own venv")
    p.add_argument("--smoke", action="store_true", help="start A1111 once and check tab, API and txt2img")
    p.add_argument("--smoke-sd15", action="store_true",
                   help="--smoke also renders 64x64, 1 step with the random SD1.5 (loads 2 GB; ~1 min on 2 cores)")
    p.add_argument("--smoke-timeout", type=float, default=600.0)
    a = p.parse_args(argv)

    t_all = time.monotonic()
    a1111 = a.a1111.expanduser().resolve()
    models = a.models.expanduser().resolve()
    extension = a.extension.expanduser().resolve()
    trainer_python = a.trainer_python.expanduser().absolute()
    sources = parse_pairs(a.source, "--source")
    repos = {n: (a.repositories.expanduser().resolve() / n) for n in REPOSITORIES} if a.repositories else {}
    repos.update(parse_pairs(a.repo, "--repo"))
    missing = [n for n in REPOSITORIES if n not in repos]
    if missing:
        raise SystemExit(f"[setup_a1111] no folder for {missing}: give --repositories DIR or --repo NAME=DIR")
    if not trainer_python.exists():
        raise SystemExit(f"[setup_a1111] {trainer_python} is missing: run `make env` in {REPO} first")

    ensure_checkout(a1111, A1111_COMMIT, sources, "a1111", "launch.py")
    for name, commit in REPOSITORIES.items():
        ensure_checkout(repos[name], commit, sources, name, REPOSITORY_MARKERS[name])
    sd_scripts = None
    if a.sd_scripts:
        sd_scripts = a.sd_scripts.expanduser().resolve()
        ensure_checkout(sd_scripts, SD_SCRIPTS_COMMIT, sources, "sd-scripts", "library/train_util.py")

    link_repositories(a1111, repos)
    py = build_a1111_venv(a1111, a.python, a.torch, a.torchvision)
    ext_dir = place_extension(a1111, extension, a.extension_name, a.copy_extension)
    run_installer(a1111, py, ext_dir)
    paths = install_models(models, a1111, extension, trainer_python, not a.no_random_sd15)
    sd_py = build_sd_scripts_venv(sd_scripts, a.python, a.torch, a.torchvision) if sd_scripts else None

    data_dir = (a.data_dir or a1111.parent / "lora-trainer-data").expanduser().resolve()
    argv, env = a1111_host.start_command(a1111, port=a.port, ckpt_dir=paths["ckpt_dir"], lora_dir=paths["lora_dir"],
                                         ckpt=paths["demo"], data_dir=data_dir, trainer_python=trainer_python,
                                         sd_scripts=sd_scripts)
    say(f"done in {time.monotonic() - t_all:.0f} s. Start A1111 on CPU (wait for its 'Startup time' line "
        "before the first request):")
    print(a1111_host.shell_line(argv, env, a1111), flush=True)
    if sd_py is not None and "sd15" in paths:
        say("host tier, kohya engine: LORA_TRAINER_TEST_SD_SCRIPTS=%s LORA_TRAINER_TEST_SD_SCRIPTS_PYTHON=%s "
            "LORA_TRAINER_TEST_SD15=%s" % (sd_scripts, sd_py, paths["sd15"]))
    if a.smoke:
        return 0 if smoke(a1111, a.port, paths, trainer_python, sd_scripts, a.smoke_timeout,
                            sd15=a.smoke_sd15 and "sd15" in paths) else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

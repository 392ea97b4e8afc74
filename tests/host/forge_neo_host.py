"""Start and stop a real Forge Neo (gradio 4.40, on CPU) for the host test tier.

Standard library only; the Neo counterpart of a1111_host.py, whose process wrapper, request
helper and offline environment it reuses (A1111's own command is unchanged there). The host
itself (tree, venv, models) is made by `tests/host/setup_forge_neo.py`; nothing of it lives in
this repository.

Differences from A1111's command line:
  --cpu                          Neo's backend flag (A1111: --use-cpu all --no-half)
  --skip-python-version-check    Neo warns on anything but Python 3.13
  --ckpt-dirs DIR                a list (append); Neo has no --ckpt-dir and no --ckpt
  --lora-dir DIR                 from extensions-builtin/sd_forge_lora/preload.py (--lora-dirs is a list)
  no --server-name / --listen    either marks the server non-local (cmd_opts.webui_is_non_local), which
                                 sets cmd_opts.disable_extension_access; Neo binds 127.0.0.1 without them
  no --skip-install              --skip-prepare-environment already skips Neo's installers

    from host.forge_neo_host import NeoProcess, start_command
    argv, env = start_command("/work/hosts/forge-neo", port=7872, ckpt_dirs=[...], lora_dir=..., data_dir=tmp)
    with NeoProcess(argv, env, cwd="/work/hosts/forge-neo", log_path=tmp / "neo.log") as host:
        host.wait_ready(timeout_s=300)
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Iterable, Mapping

try:  # as a package (pytest: `host.forge_neo_host`) or as a sibling script module
    from . import a1111_host
except ImportError:  # pragma: no cover - imported by setup_forge_neo.py with tests/host on sys.path
    import a1111_host

# Same process handling as A1111: its own group, output to a log, ready at "Startup time: ".
# Neo's SIGINT handler calls os._exit(0) at once.
NeoProcess = a1111_host.A1111Process
request_json = a1111_host.request_json
free_port = a1111_host.free_port
shell_line = a1111_host.shell_line
HostFailed = a1111_host.HostFailed

CPU_ARGS = ("--cpu", "--skip-prepare-environment", "--skip-python-version-check", "--skip-torch-cuda-test", "--api")
# Neo's launch_utils reads these too (a stray one would change what it installs or loads).
DROPPED_ENV = a1111_host.DROPPED_ENV + ("GRADIO_PACKAGE", "TORCH_INDEX_URL", "PYTORCH_VERSION", "XFORMERS_PACKAGE",
                                        "PACKAGING_PACKAGE", "BNB_PACKAGE", "ONNX_PACKAGE", "SD_WEBUI_RESTARTING")
VERSION_UID = "PY313"  # modules/launch_utils.py: a config.json without it makes Neo wait for Enter
STARTUP_SECONDS = re.compile(r"Startup time: ([0-9.]+)s")


def venv_python(neo) -> Path:
    return Path(neo) / "venv" / "bin" / "python"


def start_command(neo, *, port: int, ckpt_dirs, lora_dir, python=None, data_dir=None, trainer_python=None,
                  sd_scripts=None, settings_dir=None, nowebui: bool = False, extra_args: Iterable[str] = (),
                  base_env: Mapping[str, str] | None = None) -> tuple[list[str], dict[str, str]]:
    """(argv, env) that start Forge Neo headless on CPU on 127.0.0.1:port, run with cwd=neo.

    ckpt_dirs      one folder or a list (each becomes --ckpt-dirs DIR); put only checkpoints Neo's
                   detector recognises there (it refuses tiny models such as the demo model)
    settings_dir   Neo's config.json / ui-config.json go there; a missing config.json is written
                   with Neo's VERSION_UID first (Neo stops at an input() prompt on a config without it)
    data_dir, trainer_python, sd_scripts: the extension's LORA_TRAINER_* variables, as in a1111_host.
    """
    neo = Path(neo)
    if isinstance(ckpt_dirs, (str, os.PathLike)):
        ckpt_dirs = [ckpt_dirs]
    argv = [str(python or venv_python(neo)), "launch.py", *CPU_ARGS, "--port", str(int(port))]
    for folder in ckpt_dirs:
        argv += ["--ckpt-dirs", str(folder)]
    argv += ["--lora-dir", str(lora_dir)]
    if nowebui:
        argv.append("--nowebui")
    if settings_dir:
        settings_dir = Path(settings_dir)
        settings_dir.mkdir(parents=True, exist_ok=True)
        config = settings_dir / "config.json"
        if not config.exists():
            config.write_text('{"VERSION_UID": "%s"}\n' % VERSION_UID, encoding="utf-8")
        argv += ["--ui-settings-file", str(config), "--ui-config-file", str(settings_dir / "ui-config.json")]
    argv += [str(a) for a in extra_args]
    base = os.environ if base_env is None else base_env
    env = {k: v for k, v in base.items() if k not in DROPPED_ENV and not k.startswith("LORA_TRAINER_")}
    env.update(a1111_host.OFFLINE_ENV)
    for key, value in (("LORA_TRAINER_DATA_DIR", data_dir), ("LORA_TRAINER_PYTHON", trainer_python),
                       ("LORA_TRAINER_SD_SCRIPTS", sd_scripts)):
        if value:
            env[key] = str(value)
    return argv, env


def startup_seconds(line: str | None) -> float | None:
    """The total of a "Startup time: 54.3s (prepare environment: ...)" line."""
    m = STARTUP_SECONDS.search(line or "")
    return float(m.group(1)) if m else None


def top_tabs(config) -> dict[str, str]:
    """{elem_id: label} of the web UI's top-level tabs in a gradio /config answer. Both A1111 1.10
    and Neo build them as `gr.TabItem(label, id=ifid, elem_id=f"tab_{ifid}")` (components of type
    "tabitem"), so the Train LoRA tab is "tab_lora_trainer". Finding "Train LoRA" anywhere in the
    JSON is not enough: the Settings section of that name is a tabitem too ("settings_..."), and
    it is there even when the tab's callback failed."""
    comps = config.get("components", []) if isinstance(config, dict) else []
    out = {}
    for c in comps:
        props = c.get("props", {}) if isinstance(c, dict) else {}
        elem_id = props.get("elem_id")
        if c.get("type") == "tabitem" and isinstance(elem_id, str) and elem_id.startswith("tab_"):
            out[elem_id] = props.get("label")
    return out


def startup_entries(profile, needle: str) -> dict[str, float]:
    """Entries of /internal/profile-startup (timer.startup_record: {"records": {...}, "total": s})
    whose name contains needle, e.g. "lora_trainer.py": its load-scripts and app_started times."""
    records = profile.get("records", {}) if isinstance(profile, dict) else {}
    return {k: round(v, 3) for k, v in records.items() if needle in k}

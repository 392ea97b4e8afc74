"""`python -m lib_lora_trainer engines ...`: what each engine needs, and sd-scripts installed by
the extension (list, status, install). Standard library only."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("engines", help="training engines: status, and installing kohya sd-scripts")
    esub = p.add_subparsers(dest="engines_command", required=True)
    st = esub.add_parser("status", help="each engine: usable or not and why; sd-scripts installs and their state")
    st.add_argument("--json", action="store_true")
    _settings_args(st)
    st.set_defaults(func=run_status)
    ins = esub.add_parser("install", help="install kohya sd-scripts at a release into the data dir (own venv)")
    ins.add_argument("--version", dest="sd_version", default=None,
                     help="a release tag (default: the newest one verified here; see `engines status`)")
    ins.add_argument("--force", action="store_true", help="install again even if it is ready")
    ins.add_argument("--background", action="store_true", help="start it and return; `engines status` follows it")
    ins.add_argument("--quiet", action="store_true", help="no progress lines (they still go to install.log)")
    _settings_args(ins)
    ins.set_defaults(func=run_install)


def _settings_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", help="the extension's data dir (default: LORA_TRAINER_DATA_DIR or <ext>/data)")
    p.add_argument("--engines-dir", help=argparse.SUPPRESS)  # the data dir's engines/ (background installs)
    p.add_argument("--url", help="where to clone sd-scripts from (a git URL or a local git folder)")
    p.add_argument("--torch", help="pip arguments for torch, e.g. 'torch==2.6.0 torchvision==0.21.0 --index-url "
                                   "https://download.pytorch.org/whl/cu124' (default: reuse this Python's torch)")
    p.add_argument("--base-python", help="the Python the venv is made from (3.10-3.12)")
    p.add_argument("--sd-scripts", help="a checkout of your own (like the sd-scripts folder setting)")


def _settings(args) -> dict:
    from lib_lora_trainer import paths

    engines_dir = args.engines_dir or str(paths.data_dir(args.data_dir) / "engines")
    out = {"engines_dir": engines_dir}
    for key, value in (("sd_scripts_url", args.url), ("sd_scripts_torch", args.torch),
                       ("sd_scripts_base_python", args.base_python), ("sd_scripts_path", args.sd_scripts),
                       ("sd_scripts_version", getattr(args, "sd_version", None))):
        if value:
            out[key] = value
    return out


def status_dict(settings: dict) -> dict:
    """Every engine's status and the managed sd-scripts installs (the API answers the same)."""
    from .registry import get_engine, list_engines
    from .sd_scripts_install import RELEASES, SdScriptsInstaller

    engines = {}
    for name in list_engines():
        engine = get_engine(name, settings)
        s = engine.status()
        engines[name] = {"display_name": engine.display_name, "available": s.available, "version": s.version,
                         "path": s.path, "python": s.python, "reason": s.reason}
    notes = {r.tag: r.note for r in RELEASES}
    installs = [dict(s.to_dict(), note=notes.get(s.version, ""))
                for s in SdScriptsInstaller(settings["engines_dir"], settings).states()]
    return {"engines": engines, "sd_scripts_installs": installs}


def run_status(args) -> int:
    data = status_dict(_settings(args))
    if args.json:
        print(json.dumps(data, indent=2))
        return 0
    for name, e in data["engines"].items():
        print(f"{name}: {'ready' if e['available'] else 'not usable'}" + (f", {e['version']}" if e["version"] else "")
              + (f" at {e['path']}" if e["path"] else ""))
        if e["reason"]:
            print(f"  {e['reason']}")
    print("sd-scripts installed by the extension:")
    for s in data["sd_scripts_installs"]:
        detail = s["reason"] if s["state"] == "broken" else s["step"] if s["state"] == "installing" else s["commit"]
        print(f"  {s['version']}: {s['state']}" + (f" ({detail})" if detail else "") + (f"; {s['note']}" if s["note"]
                                                                                         else ""))
    return 0


def run_install(args) -> int:
    from .sd_scripts_install import DEFAULT_VERSION, InstallError, SdScriptsInstaller, start_install

    settings = _settings(args)
    version = args.sd_version or DEFAULT_VERSION
    try:
        if args.background:
            state = start_install(settings["engines_dir"], version, settings)
            print(f"installing sd-scripts {version} in the background (pid {state.pid}); log: {state.log}")
            return 0
        installer = SdScriptsInstaller(settings["engines_dir"], settings)
        state = installer.install(version, progress=None if args.quiet else print, force=args.force)
    except InstallError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if state.state != "ready":
        print(f"error: sd-scripts {version} is {state.state}: {state.reason} (log: {state.log})", file=sys.stderr)
        return 1
    print(f"sd-scripts {version} ({state.commit}) is ready: {Path(state.checkout)}; python {state.python}")
    return 0

"""`python -m lib_lora_trainer train ...` and `python -m lib_lora_trainer jobs ...`."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from . import states as S
from .supervise import ENGINE_PID, STDERR, STDOUT

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def add_parsers(sub: argparse._SubParsersAction) -> None:
    t = sub.add_parser("train", help="check, prepare, train and install a LoRA (through the job queue)")
    t.add_argument("dataset", help="folder or .zip of images + .txt captions")
    t.add_argument("--trigger", required=True)
    t.add_argument("--base", required=True, help="base checkpoint (.safetensors/.ckpt or diffusers folder)")
    t.add_argument("--name", required=True, help="LoRA name (file name in the Lora folder)")
    t.add_argument("--class-token")
    t.add_argument("--preset", default="sd15-portrait")
    t.add_argument("--engine", choices=("builtin", "kohya"), default="builtin")
    t.add_argument("--lora-dir", type=Path, help="where the LoRA is installed (default <data dir>/Lora)")
    t.add_argument("--data-dir", type=Path, help="job database and folders (default LORA_TRAINER_DATA_DIR)")
    t.add_argument("--crop", choices=("center", "face", "none"))
    t.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config field")
    t.add_argument("--detach", action="store_true", help="queue and start, then return (the job keeps running)")
    t.add_argument("--json", action="store_true", help="print the final job as JSON")
    t.set_defaults(func=run_train)

    j = sub.add_parser("jobs", help="list, follow, cancel and resume jobs")
    j.add_argument("--data-dir", type=Path)
    j.add_argument("--lora-dir", type=Path)
    jsub = j.add_subparsers(dest="jobs_command", required=True)
    ls = jsub.add_parser("list")
    ls.add_argument("--json", action="store_true")
    show = jsub.add_parser("show")
    show.add_argument("id")
    show.add_argument("--json", action="store_true")
    logs = jsub.add_parser("logs")
    logs.add_argument("id")
    logs.add_argument("--follow", action="store_true")
    cancel = jsub.add_parser("cancel")
    cancel.add_argument("id")
    cancel.add_argument("--no-wait", action="store_true", help="return at once; the trainer saves and stops")
    resume = jsub.add_parser("resume")
    resume.add_argument("id")
    resume.add_argument("--wait", action="store_true", help="follow it to the end")
    best = jsub.add_parser("install-recommended",
                           help="install the checkpoint the job's test recommends, with its weight as preferred weight")
    best.add_argument("id")
    j.set_defaults(func=run_jobs)


def parse_sets(items: list[str]) -> dict:
    out = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--set {item!r}: use KEY=VALUE, e.g. --set learning_rate=1e-4")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw  # plain strings need no quotes
        out[key.strip()] = value
    return out


def _service(args):
    from .service import JobService
    from lib_lora_trainer.evaluate.auto import AutoTestHook

    service = JobService(data_dir=getattr(args, "data_dir", None), lora_dir=getattr(args, "lora_dir", None))
    # train then test (per job: test_after_training), in the trainer environment the settings name
    service.hooks.add(AutoTestHook(service.data_dir, settings=service.settings))
    return service


def job_json(job) -> dict:
    folder = Path(job.job_dir)
    engine_pid = None
    try:
        engine_pid = int((folder / ENGINE_PID).read_text())
    except (OSError, ValueError):
        pass
    p = job.progress or {}
    return {
        "id": job.id, "name": job.name, "state": job.state, "engine": job.engine,
        "created_at": job.created_at, "started_at": job.started_at, "finished_at": job.finished_at,
        "progress": {"step": p.get("step"), "total": p.get("total"), "epoch": p.get("epoch"),
                     "epochs": p.get("epochs"), "rate": p.get("rate_it_s"), "eta_s": p.get("eta_s"),
                     "loss": p.get("loss")},
        "pid": engine_pid if job.state == S.RUNNING else None, "supervisor_pid": job.pid,
        "error": job.error, "error_kind": job.error_kind, "returncode": job.returncode,
        "paths": {"job_dir": str(folder), "stdout": str(folder / STDOUT), "stderr": str(folder / STDERR),
                  "outputs": str(folder / "output"), "installed": job.installed_path},
    }


def _progress_line(job) -> str:
    p = job.progress or {}
    step, total = p.get("step") or 0, p.get("total") or 0
    bar = ""
    if total:
        filled = int(30 * step / total)
        bar = "[" + "#" * filled + "." * (30 - filled) + f"] {step}/{total}"
    rate = p.get("rate_it_s")
    extra = f" {rate:.2f} it/s" if rate else ""
    if p.get("eta_s") is not None:
        extra += f" eta {int(p['eta_s'])} s"
    if p.get("loss") is not None:
        extra += f" loss {p['loss']:.4f}"
    return f"{job.state:<11} {bar}{extra}"


def run_train(args) -> int:
    from lib_lora_trainer.config.presets import resolve_config
    from lib_lora_trainer.config.training_config import ConfigError

    from .service import SubmitError

    try:
        overrides = parse_sets(args.set)
        overrides.update(name=args.name, trigger=args.trigger, base_model=str(args.base), engine=args.engine)
        if args.class_token:
            overrides["class_token"] = args.class_token
        cfg = resolve_config(args.preset, overrides)
    except (ConfigError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    service = _service(args)
    try:
        job = service.submit(args.dataset, cfg, crop=args.crop)
    except SubmitError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    plan = json.loads((Path(job.job_dir) / "plan.json").read_text())
    print(f"job {job.id}: {plan['num_images']} images, {plan['total_steps']} steps, {plan['model_type']} model, "
          f"{job.engine} engine")
    for c in plan.get("corrections") or []:
        print(f"  corrected: {c.get('field')}: {c.get('old')!r} -> {c.get('new')!r} ({c.get('reason')})"
              if isinstance(c, dict) else f"  corrected: {c}")
    vram = plan.get("vram")
    if vram:
        print(f"  peak VRAM estimate {vram['estimate_gib']} GiB ({vram['low_gib']}-{vram['high_gib']}), "
              f"free {vram['free_gib']} GiB")
        if vram.get("warning"):
            print(f"  warning: {vram['warning']}")
    if args.detach:
        service.tick()
        print(f"started in the background; follow with: python -m lib_lora_trainer jobs logs {job.id} --follow")
        return EXIT_OK
    tty = sys.stdout.isatty()
    last = [""]

    def show(j):
        line = _progress_line(j)
        if line != last[0]:
            print(("\r" + line) if tty else line, end="" if tty else "\n", flush=True)
            last[0] = line
    job = service.wait(job.id, poll_s=1.0, on_tick=show)
    if tty:
        print()
    return _report_end(job, args.json)


def _report_end(job, as_json: bool) -> int:
    if as_json:
        print(json.dumps(job_json(job), indent=2))
    if job.state == S.SUCCEEDED:
        print(f"done: {job.installed_path}")
        print(f"sidecar: {Path(job.installed_path).with_suffix('.json')}")
        return EXIT_OK
    print(f"{job.state}: {job.error_kind}: {job.error}", file=sys.stderr)
    return EXIT_FAILED


def run_jobs(args) -> int:
    service = _service(args)
    service.reconcile()
    cmd = args.jobs_command
    try:
        if cmd == "list":
            jobs = service.list()
            if args.json:
                print(json.dumps([job_json(j) for j in jobs], indent=2))
            else:
                for j in jobs:
                    print(f"{j.id}  {j.name:<24} {_progress_line(j)}")
            return EXIT_OK
        job = service.get(args.id)
        if cmd == "show":
            print(json.dumps(job_json(job), indent=2) if args.json else _describe(job))
            return EXIT_OK
        if cmd == "logs":
            return _logs(service, job, args.follow)
        if cmd == "cancel":
            job = service.cancel(job.id, wait=not args.no_wait)
            print(f"{job.id}: {job.state}")
            return EXIT_OK
        if cmd == "resume":
            job = service.resume(job.id)
            service.tick()
            print(f"{job.id}: resumed from {job.resume_from or 'the start'}")
            if args.wait:
                return _report_end(service.wait(job.id), False)
            return EXIT_OK
        if cmd == "install-recommended":
            from lib_lora_trainer.evaluate.recommend import RecommendError, install_recommended

            try:
                path, best = install_recommended(job)
            except RecommendError as exc:
                print(f"error: {exc}", file=sys.stderr)
                return EXIT_USAGE
            print(f"{path}: now {best['checkpoint']}, preferred weight {best['weight']:g}\n{best['sentence']}")
            return EXIT_OK
    except KeyError as exc:
        print(f"error: {exc.args[0]}", file=sys.stderr)
        return EXIT_USAGE
    except S.TransitionError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return EXIT_USAGE


def _describe(job) -> str:
    d = job_json(job)
    lines = [f"{d['id']}  {d['name']}  {d['state']}  ({d['engine']} engine)", f"  {_progress_line(job)}"]
    if d["error"]:
        lines.append(f"  error ({d['error_kind']}): {d['error']}")
    for k, v in d["paths"].items():
        if v:
            lines.append(f"  {k}: {v}")
    return "\n".join(lines)


def _logs(service, job, follow: bool) -> int:
    paths = [Path(job.job_dir) / STDOUT, Path(job.job_dir) / STDERR]
    offsets = [0, 0]
    while True:
        for i, path in enumerate(paths):
            try:
                with open(path, "rb") as f:
                    f.seek(offsets[i])
                    data = f.read()
            except FileNotFoundError:
                continue
            offsets[i] += len(data)
            sys.stdout.write(data.decode("utf-8", errors="replace"))
        sys.stdout.flush()
        if not follow:
            return EXIT_OK
        service.tick()
        if service.get(job.id).state in S.FINISHED:
            return EXIT_OK
        time.sleep(1.0)

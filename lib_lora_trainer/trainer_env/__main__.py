"""python -m lib_lora_trainer.trainer_env {create,exec,check}

  create --env-dir D [--base-python P]        make the managed trainer venv now (progress on stdout)
  exec   --env-dir D [--base-python P] [--detail-log F] -- ARGS
                                              make it if needed, then run its python with ARGS
                                              (the builtin engine's command on first use; pip's
                                              output goes to F, default trainer_env.log in the
                                              working folder, which is the job's folder)
  check  --python P                           check a user-given trainer Python (exit 1 if unusable)
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from .managed import ManagedEnv
from .plan import TrainerEnvError
from .probe import ProbeError
from .user_python import check_user_python


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lib_lora_trainer.trainer_env")
    sub = parser.add_subparsers(dest="cmd", required=True)
    for name in ("create", "exec"):
        p = sub.add_parser(name)
        p.add_argument("--env-dir", required=True)
        p.add_argument("--base-python")
    sub.choices["exec"].add_argument("--detail-log", default="trainer_env.log")
    sub.add_parser("check").add_argument("--python", required=True)
    argv = list(sys.argv[1:] if argv is None else argv)
    rest: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, rest = argv[:cut], argv[cut + 1:]
    ns = parser.parse_args(argv)
    if ns.cmd == "check":
        result = check_user_python(ns.python)
        print(result.message())
        return 0 if result.ok else 1
    env = ManagedEnv(ns.env_dir, base_python=ns.base_python)
    try:
        python = env.ensure(detail_log=Path(ns.detail_log).absolute() if ns.cmd == "exec" else None)
    except (TrainerEnvError, ProbeError) as exc:
        print(f"[trainer-env] error: {exc}", file=sys.stderr, flush=True)
        return 2
    if ns.cmd == "create":
        return 0
    if not rest:
        parser.error("exec needs the trainer's arguments after --")
    sys.stdout.flush()
    os.execv(str(python), [str(python), *rest])
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main())

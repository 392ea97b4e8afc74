"""Run a training entry point unchanged, then record torch's CUDA allocator peak (bench only).

    accelerate launch ... bench/_memwrap.py <module-or-script.py> [args...]

The target runs as `__main__` (runpy), exactly as `python -m module` / `python script.py`
would run it; the only addition is an atexit hook that writes
torch.cuda.max_memory_allocated / max_memory_reserved as JSON to $BENCH_MEM_OUT.
Used for both engines, so the numbers compare.
"""

from __future__ import annotations

import atexit
import json
import os
import runpy
import sys


def _record() -> None:
    path = os.environ.get("BENCH_MEM_OUT")
    if not path:
        return
    try:
        import torch

        if not (torch.cuda.is_available() and torch.cuda.is_initialized()):
            return
        info = {
            "max_allocated": int(torch.cuda.max_memory_allocated()),
            "max_reserved": int(torch.cuda.max_memory_reserved()),
            "device": torch.cuda.get_device_name(),
        }
        with open(path, "w", encoding="utf-8") as fh:
            json.dump(info, fh)
    except Exception as exc:  # never change the exit status of the run
        print(f"[bench memwrap] could not record CUDA memory: {exc!r}", file=sys.stderr, flush=True)


def main() -> None:
    if len(sys.argv) < 2:
        sys.exit("usage: _memwrap.py <module | script.py> [args...]")
    target, rest = sys.argv[1], sys.argv[2:]
    atexit.register(_record)
    # sys.path[0] is this file's folder: replace it with what plain python would put first.
    if target.endswith(".py"):
        path = os.path.abspath(target)
        sys.argv = [path, *rest]
        sys.path[0] = os.path.dirname(path)  # `python script.py`
        runpy.run_path(path, run_name="__main__")
    else:
        sys.argv = [target, *rest]
        sys.path[0] = os.getcwd()  # `python -m module`
        runpy.run_module(target, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()

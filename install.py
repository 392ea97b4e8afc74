"""A1111 runs this on every start (unless --skip-install), in A1111's own Python, as a subprocess
with the webui folder on PYTHONPATH.

It changes nothing in A1111's venv: the few small pure-Python packages the extension needs in
A1111's process and A1111 lacks (tomli-w; tomli on Python 3.10) go into `<extension>/.deps`
(`pip install --target`), which lib_lora_trainer puts at the end of sys.path. A1111's `pip freeze`
is the same before and after (tests/test_install_pip_freeze.py checks it against A1111 1.10.1's
pins). The trainer's heavy stack (diffusers, peft, new transformers/accelerate) never comes here:
it lives in the trainer environment (lib_lora_trainer/trainer_env), created on first use.
With --skip-install A1111 does not run this file at all, and launch.run_pip does nothing.
"""

import os
import sys

import launch  # provided by A1111 (PYTHONPATH is the webui root when this runs)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from lib_lora_trainer.trainer_env import host_deps  # noqa: E402  (standard library only)

todo = host_deps.missing()
if todo:
    args = host_deps.pip_args(sorted(todo.values()))
    # run_pip builds one command string for A1111's shell: quote the folder (it may hold spaces).
    command = " ".join(f'"{a}"' if " " in a else a for a in args)
    launch.run_pip(command, f"{', '.join(sorted(todo.values()))} for sd-webui-lora-trainer "
                            f"(into {host_deps.DEPS_DIR}, not A1111's venv)")

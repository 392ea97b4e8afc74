"""A1111 runs this on every start (unless --skip-install), in A1111's own Python.

It only installs small pure-Python packages that A1111 lacks, and never upgrades, downgrades or
pins anything A1111 already has. The trainer's heavy stack lives in its own environment.
"""

import launch  # provided by A1111 (PYTHONPATH is the webui root when this runs)

import sys

# import name -> pip requirement; each is pure Python and absent from A1111 1.10.
SMALL_DEPS = {
    "tomli_w": "tomli-w>=1.0",
}
if sys.version_info < (3, 11):  # A1111 1.10 runs on Python 3.10, which has no tomllib
    SMALL_DEPS["tomli"] = "tomli>=1.1"

for module, requirement in SMALL_DEPS.items():
    if not launch.is_installed(module.replace("_", "-")) and not launch.is_installed(module):
        # run_pip does nothing when A1111 was started with --skip-install.
        launch.run_pip(f"install {requirement}", f"{requirement} for sd-webui-lora-trainer")

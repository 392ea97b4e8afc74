"""Asks an sd-scripts checkout which arguments its training script accepts, by building the
script's own argparse parser. Run by sd_scripts_args.py as a program, with the checkout's
Python, cwd = the checkout: `python sd_scripts_probe.py train_network`. It imports nothing of ours.

Prints one line `LORA_TRAINER_ARGS <json>`: {"script", "source", "args": {dest: {...}}}.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys

MARKER = "LORA_TRAINER_ARGS "


def _parser_of(module_name: str) -> tuple[argparse.ArgumentParser, str]:
    """The script's parser: its setup_parser() (v0.6 - v0.10 and main), else the shared argument
    module newer releases build it from, found by name rather than assumed."""
    module = importlib.import_module(module_name)
    if callable(getattr(module, "setup_parser", None)):
        return module.setup_parser(), f"{module_name}.setup_parser"
    for candidate in ("library.args",):
        try:
            args_module = importlib.import_module(candidate)
        except ImportError:
            continue
        for name in ("setup_parser", "setup_network_parser", "create_parser"):
            if callable(getattr(args_module, name, None)):
                return getattr(args_module, name)(), f"{candidate}.{name}"
    raise SystemExit(f"{module_name} has no setup_parser() and library.args offers no parser builder")


def _plain(value):
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return repr(value)


def describe(parser: argparse.ArgumentParser) -> dict[str, dict]:
    out = {}
    for action in parser._actions:  # argparse keeps no public list of its actions
        if action.dest in ("help", argparse.SUPPRESS):
            continue
        out[action.dest] = {
            "options": list(action.option_strings),
            "kind": type(action).__name__.strip("_"),
            "nargs": _plain(action.nargs),
            "type": getattr(action.type, "__name__", None) if action.type else None,
            "choices": _plain(list(action.choices)) if action.choices is not None else None,
            "default": _plain(action.default),
        }
    return out


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: sd_scripts_probe.py SCRIPT_MODULE (e.g. train_network)", file=sys.stderr)
        return 2
    sys.path.insert(0, os.getcwd())
    parser, source = _parser_of(argv[0])
    sys.stdout.write(MARKER + json.dumps({"script": argv[0], "source": source, "args": describe(parser)}) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

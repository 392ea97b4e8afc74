"""Training engines: how a job's TOML files become a training subprocess.

`get_engine("builtin" | "kohya", settings)` returns an object with status(), capabilities(),
command(JobLaunch) -> LaunchSpec and extra_run_keys(JobLaunch). The trainer itself lives in
engines/builtin/ and runs only in the trainer environment. This package is also the parent
of that trainer's entry module, so importing it stays free of any work: names load lazily.
"""

from __future__ import annotations

_EXPORTS = {
    "Engine": "base", "EngineStatus": "base", "EngineUnavailable": "base", "JobLaunch": "base",
    "LaunchSpec": "base", "BuiltinEngine": "builtin_engine", "KohyaEngine": "kohya",
    "get_engine": "registry", "list_engines": "registry",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

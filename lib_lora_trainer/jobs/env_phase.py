"""The "setting up" phase of a job: the lines trainer_env/managed.py prints while it makes the
trainer environment on first use, before the trainer's own first line. Standard library only."""

from __future__ import annotations

from .progress_model import ProgressState, _clip

ENV_PREFIX = "[trainer-env]"


def env_setup_line(state: ProgressState, text: str) -> None:
    """One `[trainer-env] ...` line (prefix removed): the job is setting up, not training yet."""
    if text.startswith("error:"):
        state.phase_detail = text
        return
    if text.startswith("ready in"):
        state.phase, state.phase_detail = None, None
        return
    state.phase = "setup"
    if text.startswith("step ") or state.phase_detail is None:
        state.phase_detail = _clip(text, 200)

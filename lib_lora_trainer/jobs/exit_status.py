"""``classify_exit``: success or a failure kind with a user-facing message, from a trainer's exit
status and the ``ProgressState`` its log produced."""

from __future__ import annotations

import signal

from .progress_model import ERROR_KINDS, ProgressState, describe_error


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def classify_exit(returncode: int, state: ProgressState) -> tuple[bool, str | None, str]:
    """(succeeded, error kind or None, message) from the exit status and what the log showed.

    Failure: a non-zero status, or sd-scripts' "No data found" (it exits 0), or a NaN loss.
    130 / 143 after the builtin engine's "stopped at step" line is kind "stopped" (saved; the job
    service decides what that means). A negative status is death by signal -returncode.
    """
    kinds = [e["kind"] for e in state.errors]
    detail = {e["kind"]: e["detail"] for e in state.errors}
    if returncode < 0:
        number = -returncode
        name = _signal_name(number)
        message = f"the trainer was killed by signal {number} ({name})"
        if number == signal.SIGKILL:
            message += ": usually the system ran out of RAM (the Linux OOM killer) or it was killed by hand"
        if state.error_kind and state.error_kind not in ("traceback", "killed"):
            return False, state.error_kind, describe_error(state.error_kind, state.error_detail)
        return False, "killed", message + ". " + ERROR_KINDS["killed"].fix
    if returncode == 0:
        for kind in ("no_data", "nan"):
            if kind in kinds:
                return False, kind, describe_error(kind, detail[kind])
        where = f" at step {state.step}/{state.total}" if state.total else ""
        return True, None, f"finished{where}"
    if state.stopped and (returncode in (130, 143) or state.error_kind in (None, "traceback", "killed")):
        return False, "stopped", state.stopped_message or ERROR_KINDS["stopped"].title
    if state.error_kind:
        return False, state.error_kind, describe_error(state.error_kind, state.error_detail)
    if returncode in (130, 143):
        name = _signal_name(returncode - 128)
        return False, "interrupted", describe_error("interrupted", f"{name}, exit code {returncode}")
    last = state.log_errors[-1] if state.log_errors else None
    text = f"the trainer exited with code {returncode}" + (f": {last}" if last else "")
    return False, "exit", text

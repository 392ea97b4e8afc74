"""Job states and the transitions allowed between them."""

QUEUED, PREPARING, RUNNING = "queued", "preparing", "running"
SUCCEEDED, FAILED, CANCELLED, INTERRUPTED = "succeeded", "failed", "cancelled", "interrupted"

ACTIVE = (QUEUED, PREPARING, RUNNING)
FINISHED = (SUCCEEDED, FAILED, CANCELLED, INTERRUPTED)
RESUMABLE = (FAILED, CANCELLED, INTERRUPTED)

ALLOWED = {
    QUEUED: {PREPARING, RUNNING, CANCELLED, FAILED},
    PREPARING: {QUEUED, FAILED, CANCELLED, INTERRUPTED},
    RUNNING: {SUCCEEDED, FAILED, CANCELLED, INTERRUPTED},
    SUCCEEDED: set(),
    # resume; or, when the run had already trained every step, straight to installed
    FAILED: {QUEUED, SUCCEEDED},
    CANCELLED: {QUEUED, SUCCEEDED, FAILED},
    INTERRUPTED: {QUEUED, SUCCEEDED, FAILED},
}


class TransitionError(ValueError):
    pass


def check_transition(old: str, new: str) -> None:
    if new not in ALLOWED.get(old, set()):
        raise TransitionError(f"a job cannot go from {old} to {new}")

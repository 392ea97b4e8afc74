"""What the progress parser reports: constants, the error kinds (``ERROR_KINDS``, ``describe_error``),
``ProgressEvent`` and the ``ProgressState`` snapshot. Import these from ``jobs.progress``."""

from __future__ import annotations

from dataclasses import dataclass, field

EVENT_KINDS = ("summary", "epoch", "step", "saved", "sample", "model_saved", "stopped", "error", "warning")
TRAINING_BAR = "steps"  # sd-scripts' and our training bar; other bars (caching, captions) are not steps
# sd-scripts v0.10's validation bars (after a step / after an epoch); postfix val_avg_loss / val_epoch_avg_loss
VALIDATION_BARS = ("validation steps", "epoch validation steps")
MAX_DETAIL = 600
MAX_WARNINGS = 100
# A line the job supervisor may write between attempts of one job (logs are appended on resume):
# it resets the outcome of the previous attempt (errors, stop, model saved), not the history.
RUN_START_MARKER = "[lora-trainer] run start"


# ---------------------------------------------------------------------------------------------
# Error kinds


@dataclass(frozen=True)
class ErrorKind:
    title: str  # user-facing: what went wrong
    fix: str  # user-facing: what to do about it


ERROR_KINDS: dict[str, ErrorKind] = {
    "oom": ErrorKind(
        "Out of memory",
        "Lower the batch size or the resolution, turn on gradient checkpointing and latent caching, use fp16 or "
        "bf16 mixed precision, and close other programs (or image generation in this web UI) that use the GPU."),
    "nan": ErrorKind(
        "The loss became NaN: training diverged",
        "Lower the learning rate, keep max_grad_norm at 1.0, and use bf16 or no mixed precision instead of fp16 "
        "(for SDXL also use the fp16-fixed VAE or no_half_vae)."),
    "no_data": ErrorKind(
        "No training images were found",
        "Put the images in a subfolder named '<repeats>_<name>' (for example '10_mychar') and give its parent "
        "folder as the training folder, not the image folder itself."),
    "missing_model": ErrorKind(
        "The base model could not be loaded",
        "Check that the model file exists and is a full SD1.x/SD2.x/SDXL checkpoint (.safetensors or .ckpt, "
        "not a LoRA or a VAE); pick it again from the list."),
    "fp16_cpu": ErrorKind(
        "Mixed precision (fp16) needs a CUDA GPU",
        "Set mixed precision to 'no' to train on the CPU, or check that this Python's torch sees the GPU."),
    "tokenizer_download": ErrorKind(
        "The CLIP tokenizer could not be loaded (huggingface.co was not reachable)",
        "Connect to the internet once so it can be downloaded, or set tokenizer_cache_dir to a folder that "
        "holds it; the builtin engine needs no download."),
    "config": ErrorKind(
        "The training settings are not valid",
        "Correct the setting named in the message and start again."),
    "traceback": ErrorKind(
        "The trainer crashed",
        "The last lines of the log show where; check the settings and the model, then try again."),
    # Outcomes that classify_exit adds; they do not come from a log line alone.
    "killed": ErrorKind(
        "The trainer was killed",
        "SIGKILL usually means the system ran out of RAM (the Linux OOM killer): close other programs, "
        "lower the batch size or cache latents to disk."),
    "stopped": ErrorKind(
        "Training was stopped",
        "The last state was saved; resume to continue."),
    "interrupted": ErrorKind(
        "Training was interrupted before it could save",
        "Start it again, or resume from the last saved state if there is one."),
    "exit": ErrorKind(
        "The trainer ended with an error",
        "See the end of the log for the reason."),
}


def describe_error(kind: str, detail: str | None = None) -> str:
    """One line for the UI: the title, the log's own words in brackets, then the fix."""
    info = ERROR_KINDS.get(kind) or ERROR_KINDS["exit"]
    text = info.title
    if detail:
        text += f" ({_clip(detail.strip(), 300).rstrip(' .')})"
    return f"{text}. {info.fix}"


# ---------------------------------------------------------------------------------------------
# Events and state


@dataclass
class ProgressEvent:
    kind: str
    step: int | None = None
    total: int | None = None
    epoch: int | None = None
    epochs: int | None = None
    rate_it_s: float | None = None
    eta_s: float | None = None
    elapsed_s: float | None = None
    loss: float | None = None  # avr_loss as shown by the bar (a moving average; may be nan)
    path: str | None = None
    error_kind: str | None = None
    message: str | None = None  # error: the kind's title; warning / stopped: the log text
    fix: str | None = None  # error: what to do
    detail: str | None = None  # error: the log line it came from
    # kind "summary" (the "running training" block)
    num_train_images: int | None = None
    num_reg_images: int | None = None
    batches_per_epoch: int | None = None
    num_epochs: int | None = None
    batch_size: int | None = None
    grad_accum: int | None = None
    total_steps: int | None = None


@dataclass
class ProgressState:
    step: int = 0
    total: int | None = None
    epoch: int | None = None
    epochs: int | None = None
    rate_it_s: float | None = None
    eta_s: float | None = None
    elapsed_s: float | None = None
    loss: float | None = None
    # One point per step: the last finite avr_loss the bar showed for it (sd-scripts' moving average).
    loss_history: list[tuple[int, float]] = field(default_factory=list)
    # (training step, val_avg_loss) of each finished validation bar (sd-scripts v0.10's validation loss).
    val_loss_history: list[tuple[int, float]] = field(default_factory=list)
    summary: dict | None = None
    saved: list[str] = field(default_factory=list)  # every "saving checkpoint:" path, in order
    removed: list[str] = field(default_factory=list)  # sd-scripts' "removing old checkpoint:"
    samples: list[str] = field(default_factory=list)
    model_saved: bool = False
    stopped: bool = False
    stopped_message: str | None = None
    num_processes: int | None = None
    model_path: str | None = None  # learned from "load StableDiffusion checkpoint: ..."
    # The primary error (the first one; a bare traceback only until a recognised error follows).
    error_kind: str | None = None
    error_message: str | None = None
    error_fix: str | None = None
    error_detail: str | None = None
    errors: list[dict] = field(default_factory=list)  # every kind seen once: {"kind", "detail"}
    failed: bool = False  # the log shows an error (classify_exit decides the outcome)
    warnings: list[str] = field(default_factory=list)
    log_errors: list[str] = field(default_factory=list)  # ERROR records of no known kind
    # "setup" while the trainer environment is being made before training (first use); else None.
    phase: str | None = None
    phase_detail: str | None = None  # e.g. "step 3/3: pip install ... (several minutes on first use)"


def _clip(text: str, limit: int = MAX_DETAIL) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"

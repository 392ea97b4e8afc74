"""The line patterns of a trainer's console output, compiled, and small helpers.

Both engines print the same lines (see the sd-scripts fixtures and engines/builtin/logs.py):

- stdout: the ``running training / 学習開始`` summary block, ``epoch N/M``,
  ``saving checkpoint: <path>``, ``model saved.``, ``sample image saved: <path>``,
  ``stopped at step N/M: saved <path>``, ``loading model for process R/W``; with
  sd-scripts' ``console_log_simple`` every log message is a bare line here too.
- stderr: tqdm bars separated by ``\\r`` (the training bar has the description ``steps``),
  rich log records (``2026-11-27 05:29:29 INFO     message   file.py:123``, wrapped onto
  continuation lines indented to the message column, sometimes glued right after a bar),
  Python tracebacks, and the builtin engine's ``error: <message>`` lines.
"""

from __future__ import annotations

import math
import re

_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")
_RANK = re.compile(r"^\[(?:rank|default)\d+\]:\s?")  # torch.distributed's per-rank prefix
# rich's RichHandler row: time (or blanks when repeated), level padded to 8, message, file:line.
_RICH = re.compile(r"^(?:\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d(?:[.,]\d+)?|\[[^\]\r\n]{5,40}\]| {8,40}) "
                   r"(?P<level>DEBUG|INFO|WARNING|ERROR|CRITICAL) ")
_RICH_LEVEL_FIRST = re.compile(r"^(?:DEBUG|INFO|WARNING|ERROR|CRITICAL) +\S")
_RICH_PATH = re.compile(r"\s([\w.\-]+\.py:\d+)\s*$")
_STDLIB_LOG = re.compile(r"^(?P<level>DEBUG|INFO|WARNING|ERROR|CRITICAL):[\w.\-]*:(?P<msg>.*)$")

_SUMMARY_START = re.compile(r"^running training\b")
_SUMMARY_LINE = re.compile(r"^\s*(?P<key>[A-Za-z][^/]*?)\s*/.*?[:=]\s*(?P<value>\d+(?:\s*,\s*\d+)*)\s*$")
_SUMMARY_KEYS = (  # English label prefix -> field
    ("num train images", "num_train_images"),
    ("num reg images", "num_reg_images"),
    ("num batches per epoch", "batches_per_epoch"),
    ("num epochs", "num_epochs"),
    ("batch size per device", "batch_size"),
    ("gradient accumulation steps", "grad_accum"),
    ("total optimization steps", "total_steps"),
)
_EPOCH = re.compile(r"^epoch (\d+)/(\d+)$")
_SAVING = re.compile(r"^saving checkpoint: (.+)$")
_REMOVING = re.compile(r"^removing old checkpoint: (.+)$")
_MODEL_SAVED = re.compile(r"^model saved\.?$")
_SAMPLE = re.compile(r"^sample image saved: (.+)$")
_STOPPED = re.compile(r"^stopped at step (\d+)/(\d+): saved (.+)$")
_PROCESSES = re.compile(r"^loading model for process (\d+)/(\d+)$")
_MODEL_PATH = re.compile(r"^(?:load StableDiffusion checkpoint|load Diffusers pretrained models): (.+?)"
                         r"(?:, variant=.*)?$")
_OUR_WARNING = re.compile(r"^WARNING: (.+)$")
_OUR_ERROR = re.compile(r"^error: (.+)$")
_ARGPARSE_ERROR = re.compile(r"^[\w.\-/]+: error: (.+)$")
_TRACEBACK = "Traceback (most recent call last):"

# Recognised wherever a message is an error or has no level (console_log_simple drops levels).
_SPECIFIC: tuple[tuple[str, re.Pattern], ...] = (
    ("oom", re.compile(r"OutOfMemoryError|CUDA out of memory|CUDA error: out of memory|HIP out of memory|"
                       r"MPS backend out of memory|DefaultCPUAllocator: (?:can't|not enough memory)|"
                       r"not enough memory: you tried to allocate")),
    ("nan", re.compile(r"\bloss is NaN\b|avr_loss=nan\b|\bloss (?:became|is) (?:nan|inf)\b")),
    ("no_data", re.compile(r"No data found|no training images in")),
    ("fp16_cpu", re.compile(r"(?:fp16|bf16) mixed precision requires a GPU|requires a CUDA GPU")),
    ("tokenizer_download", re.compile(
        r"Can't load tokenizer|couldn't connect to '?https?://huggingface\.co|LocalEntryNotFoundError|"
        r"(?:OSError|EnvironmentError)\b.*(?:openai/clip-vit-large-patch14|laion/CLIP-ViT-bigG)")),
    ("missing_model", re.compile(
        r"model is not found as a file or in Hugging Face|HFValidationError|Repo id must be in the form|"
        r"is not a local folder and is not a valid model identifier")),
    ("config", re.compile(r"Invalid user config|voluptuous\.error|MultipleInvalid")),
)
_MODEL_SUFFIX = re.compile(r"\.(?:safetensors|ckpt|pt|pth|bin)\b", re.IGNORECASE)
_NOT_FOUND = re.compile(r"no such file|not found|does not exist|cannot find", re.IGNORECASE)


def _same(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is b
    return a == b or (math.isnan(a) and math.isnan(b))

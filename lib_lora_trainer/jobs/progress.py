"""Live progress from a trainer's console output (sd-scripts or the builtin engine).

Both engines print the same lines (see the sd-scripts fixtures and engines/builtin/logs.py):

- stdout: the ``running training / 学習開始`` summary block, ``epoch N/M``,
  ``saving checkpoint: <path>``, ``model saved.``, ``sample image saved: <path>``,
  ``stopped at step N/M: saved <path>``, ``loading model for process R/W``; with
  sd-scripts' ``console_log_simple`` every log message is a bare line here too.
- stderr: tqdm bars separated by ``\\r`` (the training bar has the description ``steps``),
  rich log records (``2026-11-27 05:29:29 INFO     message   file.py:123``, wrapped onto
  continuation lines indented to the message column, sometimes glued right after a bar),
  Python tracebacks, and the builtin engine's ``error: <message>`` lines.

``ProgressParser.feed(chunk, stream)`` takes arbitrary pieces of either stream and returns the
``ProgressEvent``s that complete segments produced; ``finish()`` flushes what is left;
``state`` is a ``ProgressState`` snapshot for the UI. ``classify_exit`` turns the exit status
plus that state into success or a failure kind with a user-facing message.

Pure standard library: this runs inside the web UI's process.
"""

from __future__ import annotations

import bisect
import codecs
import math
import os
import re
import signal
import unicodedata
from dataclasses import dataclass, field

__all__ = [
    "ERROR_KINDS", "ErrorKind", "ProgressEvent", "ProgressParser", "ProgressState", "classify_exit",
    "describe_error", "parse_duration", "parse_rate", "parse_tqdm", "TqdmUpdate",
]

EVENT_KINDS = ("summary", "epoch", "step", "saved", "sample", "model_saved", "stopped", "error", "warning")
TRAINING_BAR = "steps"  # sd-scripts' and our training bar; other bars (caching, captions) are not steps
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


# ---------------------------------------------------------------------------------------------
# tqdm


@dataclass
class TqdmUpdate:
    desc: str | None
    n: int
    total: int | None
    elapsed_s: float | None
    eta_s: float | None
    rate_it_s: float | None
    postfix: dict[str, str]
    end: int  # index just after the closing "]"


_NUM = r"\d+(?:\.\d+)?[kMGTPEZY]?"
_BAR = re.compile(
    r"\s*(?:(?P<desc>[^|\r\n]*?):\s*)?(?P<pct>\d{1,3})%\|[^|]*\|\s*(?P<n>" + _NUM + r")/(?P<total>" + _NUM
    + r")\s*\[(?P<elapsed>[\d:]+|\?)<(?P<remaining>[\d:]+|\?),\s*(?P<rate>[^,\]]*?)\s*(?:,\s*(?P<postfix>[^\]]*))?\]")
_BAR_NO_TOTAL = re.compile(
    r"\s*(?:(?P<desc>[^|\r\n\[\]]*?):\s*)?(?P<n>" + _NUM + r")it\s*\[(?P<elapsed>[\d:]+|\?),\s*(?P<rate>[^,\]]*?)"
    r"\s*(?:,\s*(?P<postfix>[^\]]*))?\]")
_SCALE = {"": 1, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18, "Z": 1e21, "Y": 1e24}


def parse_duration(text: str | None) -> float | None:
    """tqdm's ``MM:SS`` / ``H:MM:SS`` (hours may pass 24) in seconds; ``?`` or junk is None."""
    if not text:
        return None
    parts = text.strip().split(":")
    if not 1 <= len(parts) <= 3 or not all(p.isdigit() for p in parts):
        return None
    seconds = 0.0
    for p in parts:
        seconds = seconds * 60 + int(p)
    return seconds


def parse_rate(text: str | None) -> float | None:
    """tqdm's rate in iterations per second: ``1.13it/s`` as is, ``4.20s/it`` inverted, ``?it/s`` None."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)([kMGTPEZY]?)(it/s|s/it)\s*", text or "")
    if not m:
        return None
    value = float(m.group(1)) * _SCALE[m.group(2)]
    if m.group(3) == "s/it":
        return 1.0 / value if value > 0 else None
    return value


def _count(text: str) -> int:
    m = re.fullmatch(r"(\d+(?:\.\d+)?)([kMGTPEZY]?)", text)
    return int(round(float(m.group(1)) * _SCALE[m.group(2)])) if m else 0


def _postfix(text: str | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for part in (text or "").split(","):
        key, sep, value = part.partition("=")
        if sep:
            out[key.strip()] = value.strip()
    return out


def parse_tqdm(segment: str) -> TqdmUpdate | None:
    """A tqdm status line at the start of ``segment`` (text may follow it), else None."""
    m = _BAR.match(segment)
    if m:
        return TqdmUpdate(desc=(m.group("desc") or "").strip() or None, n=_count(m.group("n")),
                          total=_count(m.group("total")), elapsed_s=parse_duration(m.group("elapsed")),
                          eta_s=parse_duration(m.group("remaining")), rate_it_s=parse_rate(m.group("rate")),
                          postfix=_postfix(m.group("postfix")), end=m.end())
    m = _BAR_NO_TOTAL.match(segment)
    if m:
        return TqdmUpdate(desc=(m.group("desc") or "").strip() or None, n=_count(m.group("n")), total=None,
                          elapsed_s=parse_duration(m.group("elapsed")), eta_s=None,
                          rate_it_s=parse_rate(m.group("rate")), postfix=_postfix(m.group("postfix")), end=m.end())
    return None


def _loss_value(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        return float(text)
    except ValueError:
        return None


# ---------------------------------------------------------------------------------------------
# Line patterns

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


def _clip(text: str, limit: int = MAX_DETAIL) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _cells(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 0 if unicodedata.combining(c) else 1
               for c in text)


def _same(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is b
    return a == b or (math.isnan(a) and math.isnan(b))


# ---------------------------------------------------------------------------------------------
# The parser


class _Record:
    """One rich log record being collected: its first row and the continuation rows."""

    def __init__(self, line: str, level: str, msg_col: int):
        self.level = level
        self.msg_col = msg_col
        rest = line[msg_col:]
        path = _RICH_PATH.search(rest)
        self.width = None
        if path:
            # Row = time | level | message | file:line, one space between columns.
            self.width = _cells(line) - msg_col - 1 - len(path.group(1))
            rest = rest[: path.start()]
        self.rows = [rest.rstrip()]

    def add(self, line: str) -> None:
        self.rows.append(line[self.msg_col:].rstrip() if not line[: self.msg_col].strip() else line.strip())

    def text(self) -> str:
        """Undo rich's wrapping: a row that would have fitted on the previous one was a newline in the
        message; a full row with no space was a word cut at the edge; otherwise a space was eaten."""
        out = self.rows[0]
        prev = out
        for row in self.rows[1:]:
            if not row.strip() or row[:1] == " " or self.width is None:
                sep = "\n" if (not row.strip() or row[:1] == " ") else " "
            else:
                first = row.split(" ", 1)[0]
                if _cells(prev) + 1 + _cells(first) <= self.width:
                    sep = "\n"
                elif " " not in prev.strip() and _cells(prev) >= self.width - 1:
                    sep = ""
                else:
                    sep = " "
            out += sep + row
            prev = row
        return out.strip()


class _Stream:
    def __init__(self) -> None:
        self.buf = ""
        self.decoder = None
        self.record: _Record | None = None
        self.in_traceback = False
        self.summary: dict | None = None  # the "running training" block being read
        self.level_col = 20  # where rich puts the level (time column + 1); learned from each record


class ProgressParser:
    """Feed stdout/stderr text as it arrives; read ``state``; collect the returned events."""

    def __init__(self, model_path: str | None = None):
        self._state = ProgressState(model_path=model_path)
        self._streams: dict[str, _Stream] = {}
        self._last_bar: tuple | None = None  # (n, total, loss) of the last step event
        self._pending_loss: tuple[int, float] | None = None

    @property
    def state(self) -> ProgressState:
        return self._state

    # -- input --------------------------------------------------------------------------------
    def feed(self, chunk: str | bytes, stream: str = "stdout") -> list[ProgressEvent]:
        st = self._streams.setdefault(stream, _Stream())
        if isinstance(chunk, (bytes, bytearray)):
            if st.decoder is None:
                st.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
            chunk = st.decoder.decode(bytes(chunk))
        out: list[ProgressEvent] = []
        data = st.buf + chunk
        pieces = re.split(r"\r\n|\r|\n", data)
        st.buf = pieces.pop()
        for seg in pieces:
            self._segment(seg, stream, out)
        self._peek(st)
        return out

    def finish(self) -> list[ProgressEvent]:
        """End of both streams: parse what is left (the last bar, a record, a summary)."""
        out: list[ProgressEvent] = []
        for name, st in self._streams.items():
            if st.decoder is not None:
                st.buf += st.decoder.decode(b"", final=True)
            if st.buf:
                seg, st.buf = st.buf, ""
                self._segment(seg, name, out)
            self._close_record(name, out)
            st.in_traceback = False
            self._end_summary(st, out)
        self._commit_pending_loss()
        return out

    def reset_run(self) -> None:
        """A new attempt of the same job starts (its log is appended): forget the last outcome."""
        s = self._state
        s.error_kind = s.error_message = s.error_fix = s.error_detail = None
        s.errors, s.log_errors = [], []
        s.failed = s.stopped = s.model_saved = False
        s.stopped_message = None
        self._last_bar = None

    # -- segments -----------------------------------------------------------------------------
    def _segment(self, seg: str, stream: str, out: list) -> None:
        if "\x1b" in seg:
            seg = _ANSI.sub("", seg)
        seg = _RANK.sub("", seg)
        if not seg:
            return
        bar = parse_tqdm(seg) if "[" in seg else None
        if bar is not None:
            self._close_record(stream, out)
            self._bar(bar, out)
            rest = seg[bar.end:]
            if rest.strip():  # a log record or print glued right after the bar text
                self._line(self._unglue(rest, stream), stream, out)
            return
        self._line(seg, stream, out)

    def _unglue(self, rest: str, stream: str) -> str:
        """Text after a bar starts where the bar ended, after tqdm's padding spaces (it blanks a longer
        previous bar). A rich row glued there is laid out as if it began at column 0: realign it."""
        stripped = rest.lstrip(" ")
        if _RICH_LEVEL_FIRST.match(stripped):  # a repeated timestamp: rich printed blanks instead
            return " " * self._streams[stream].level_col + stripped
        return stripped

    def _peek(self, st: _Stream) -> None:
        """tqdm ends an update with no newline: show an unfinished training bar in the state now
        (no event; the same text is parsed properly once its segment ends)."""
        if "[" not in st.buf:
            return
        bar = parse_tqdm(_ANSI.sub("", st.buf))
        if bar is not None and bar.desc == TRAINING_BAR:
            self._bar_state(bar)

    def _line(self, line: str, stream: str, out: list) -> None:
        st = self._streams[stream]
        m = _RICH.match(line)
        if m:
            self._close_record(stream, out)
            st.in_traceback = False
            st.level_col = m.start("level")
            st.record = _Record(line, m.group("level"), st.level_col + 9)
            return
        if st.record is not None:
            if not line.strip() or line.startswith(" " * st.record.msg_col):
                st.record.add(line)
                return
            self._close_record(stream, out)
        self._plain(line, stream, out)

    def _close_record(self, stream: str, out: list) -> None:
        st = self._streams.get(stream)
        if st is None or st.record is None:
            return
        record, st.record = st.record, None
        self._message(record.text(), record.level, stream, out)

    def _plain(self, line: str, stream: str, out: list) -> None:
        st = self._streams[stream]
        text = line.strip()
        if not text:
            return
        if text.startswith(_TRACEBACK):
            st.in_traceback = True
            return
        if st.in_traceback:
            if line[:1] in (" ", "\t"):
                return  # a frame or its source line
            st.in_traceback = False
            self._exception(text, out)
            return
        m = _STDLIB_LOG.match(text)
        if m:
            self._message(m.group("msg").strip(), m.group("level"), stream, out)
            return
        self._message(line.rstrip(), None, stream, out)

    # -- messages -----------------------------------------------------------------------------
    def _message(self, text: str, level: str | None, stream: str, out: list) -> None:
        s = self._state
        st = self._streams[stream]
        t = text.strip()
        if not t:
            return
        if t.startswith(RUN_START_MARKER):
            self._end_summary(st, out)
            self.reset_run()
            return
        if st.summary is not None and self._summary_line(st, text, out):
            return
        if _SUMMARY_START.match(t):
            self._end_summary(st, out)
            st.summary = {}
            return
        if level == "WARNING":
            self._warning(t, out)
            return
        if (m := _EPOCH.match(t)):
            s.epoch, s.epochs = int(m.group(1)), int(m.group(2))
            out.append(ProgressEvent("epoch", epoch=s.epoch, epochs=s.epochs))
            return
        if (m := _SAVING.match(t)):
            path = m.group(1).strip()
            s.saved.append(path)
            out.append(ProgressEvent("saved", path=path, step=s.step, total=s.total, epoch=s.epoch))
            return
        if _MODEL_SAVED.match(t):
            s.model_saved = True
            out.append(ProgressEvent("model_saved", path=s.saved[-1] if s.saved else None, step=s.step,
                                     total=s.total))
            return
        if (m := _SAMPLE.match(t)):
            path = m.group(1).strip()
            s.samples.append(path)
            out.append(ProgressEvent("sample", path=path, step=s.step, total=s.total))
            return
        if (m := _STOPPED.match(t)):
            s.stopped, s.stopped_message = True, t
            out.append(ProgressEvent("stopped", step=int(m.group(1)), total=int(m.group(2)),
                                     path=m.group(3).strip(), message=t))
            return
        if (m := _REMOVING.match(t)):
            s.removed.append(m.group(1).strip())
            return
        if (m := _PROCESSES.match(t)):
            s.num_processes = int(m.group(2))
            return
        if (m := _MODEL_PATH.match(t)):
            s.model_path = m.group(1).strip()
            return
        if level is None and (m := _OUR_WARNING.match(t)):
            self._warning(m.group(1), out)
            return
        if level in ("DEBUG", "INFO"):
            return
        # An error record, or a line without level: is it an error we know?
        if level is None and (m := _OUR_ERROR.match(t)):
            message = m.group(1)
            self._error(self._specific(message) or ("missing_model" if self._model_error(message) else "config"),
                        message, out)
            return
        if level is None and (m := _ARGPARSE_ERROR.match(t)):
            self._error(self._specific(t) or "config", t, out)
            return
        kind = self._specific(t)
        if kind is None and self._mentions_model(t) and _NOT_FOUND.search(t):
            kind = "missing_model"
        if kind is not None:
            self._error(kind, t, out)
        elif level in ("ERROR", "CRITICAL"):
            if len(s.log_errors) < MAX_WARNINGS:
                s.log_errors.append(_clip(t))

    def _summary_line(self, st: _Stream, text: str, out: list) -> bool:
        m = _SUMMARY_LINE.match(text)
        if not m:
            self._end_summary(st, out)
            return False
        key = m.group("key").strip().lower()
        values = [int(v) for v in m.group("value").split(",")]
        for prefix, name in _SUMMARY_KEYS:
            if key.startswith(prefix):
                st.summary[name] = max(values)
        if key.startswith("total optimization steps"):
            self._end_summary(st, out)
        return True

    def _end_summary(self, st: _Stream, out: list) -> None:
        summary, st.summary = st.summary, None
        if not summary:
            return
        s = self._state
        s.summary = dict(summary)
        if s.total is None and summary.get("total_steps") is not None:
            s.total = summary["total_steps"]
        if s.epochs is None and summary.get("num_epochs") is not None:
            s.epochs = summary["num_epochs"]
        out.append(ProgressEvent("summary", total=summary.get("total_steps"), epochs=summary.get("num_epochs"),
                                 **{name: summary.get(name) for _, name in _SUMMARY_KEYS}))

    def _warning(self, text: str, out: list) -> None:
        s = self._state
        text = _clip(text.strip())
        if len(s.warnings) < MAX_WARNINGS:
            s.warnings.append(text)
        out.append(ProgressEvent("warning", message=text, step=s.step))

    # -- errors -------------------------------------------------------------------------------
    def _specific(self, text: str) -> str | None:
        text = " ".join(text.split())  # a wrapped record may keep a line break where a space was
        for kind, pattern in _SPECIFIC:
            if pattern.search(text):
                return kind
        return None

    def _model_paths(self) -> list[str]:
        p = self._state.model_path
        if not p:
            return []
        return list(dict.fromkeys([p, os.path.expanduser(p), os.path.normpath(os.path.expanduser(p))]))

    def _mentions_model(self, text: str) -> bool:
        return any(p in text for p in self._model_paths())

    def _model_error(self, message: str) -> bool:
        """The builtin engine's model errors start with the model's path: ``<path>: <what is wrong>``."""
        if any(message.startswith(p + ":") for p in self._model_paths()):
            return True
        head = message.split(": ", 1)[0]
        return bool(_MODEL_SUFFIX.search(head)) and " " not in head.strip()

    def _exception(self, text: str, out: list) -> None:
        """The last line of a traceback: ``SomeError: message``."""
        kind = self._specific(text)
        if kind is None and text.startswith(("FileNotFoundError", "OSError: [Errno 2]")) and (
                self._mentions_model(text) or _MODEL_SUFFIX.search(text)):
            kind = "missing_model"
        if kind is None and "died with <Signals.SIGKILL" in text:
            kind = "killed"
        self._error(kind or "traceback", text, out)

    def _error(self, kind: str, detail: str, out: list) -> None:
        s = self._state
        detail = _clip(detail.strip())
        if any(e["kind"] == kind for e in s.errors):
            return  # once per kind (a NaN bar repeats every step)
        s.errors.append({"kind": kind, "detail": detail})
        s.failed = True
        info = ERROR_KINDS[kind]
        if s.error_kind is None or (s.error_kind == "traceback" and kind != "traceback"):
            s.error_kind, s.error_message, s.error_fix, s.error_detail = kind, info.title, info.fix, detail
        out.append(ProgressEvent("error", error_kind=kind, message=info.title, fix=info.fix, detail=detail,
                                 step=s.step, total=s.total))

    # -- the training bar ---------------------------------------------------------------------
    def _bar_state(self, bar: TqdmUpdate) -> float | None:
        s = self._state
        s.step = bar.n
        if bar.total is not None:
            s.total = bar.total
        s.elapsed_s, s.eta_s, s.rate_it_s = bar.elapsed_s, bar.eta_s, bar.rate_it_s
        loss = _loss_value(bar.postfix.get("avr_loss"))
        if loss is not None:
            s.loss = loss
        return loss

    def _bar(self, bar: TqdmUpdate, out: list) -> None:
        if bar.desc != TRAINING_BAR:
            return
        loss = self._bar_state(bar)
        key = (bar.n, bar.total, loss)
        last = self._last_bar
        if last is None or last[0] != bar.n or last[1] != bar.total or (loss is not None and not _same(last[2], loss)):
            self._last_bar = key
            out.append(ProgressEvent("step", step=bar.n, total=bar.total, rate_it_s=bar.rate_it_s,
                                     eta_s=bar.eta_s, elapsed_s=bar.elapsed_s, loss=loss, epoch=self._state.epoch))
        if loss is not None:
            if math.isfinite(loss):  # a NaN is an error, not a point to draw
                self._record_loss(bar.n, loss)
            else:
                self._error("nan", f"avr_loss={bar.postfix.get('avr_loss')} at step {bar.n}"
                            + (f"/{bar.total}" if bar.total else ""), out)

    def _record_loss(self, n: int, loss: float) -> None:
        """tqdm shows a new step first with the previous step's avr_loss, then with its own: a value equal
        to the last point waits until a second print confirms it or the bar moves on."""
        h = self._state.loss_history
        pending, self._pending_loss = self._pending_loss, None
        if pending is not None:
            if pending[0] != n or _same(pending[1], loss):
                self._append_loss(pending)
                if pending[0] == n:
                    return
        if h and h[-1][0] == n:
            if not _same(h[-1][1], loss):
                h[-1] = (n, loss)
            return
        if h and _same(h[-1][1], loss) and h[-1][0] < n:
            self._pending_loss = (n, loss)
            return
        self._append_loss((n, loss))

    def _append_loss(self, point: tuple[int, float]) -> None:
        h = self._state.loss_history
        if h and h[-1][0] >= point[0]:  # the bar went back (a resumed attempt): redo from there
            del h[bisect.bisect_left([p[0] for p in h], point[0]):]
        h.append(point)

    def _commit_pending_loss(self) -> None:
        pending, self._pending_loss = self._pending_loss, None
        if pending is not None:
            self._append_loss(pending)


# ---------------------------------------------------------------------------------------------
# Exit status


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

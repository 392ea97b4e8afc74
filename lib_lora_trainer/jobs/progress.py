"""Live progress from a trainer's console output (sd-scripts or the builtin engine).

``ProgressParser.feed(chunk, stream)`` takes arbitrary pieces of stdout or stderr and returns the
``ProgressEvent``s that complete segments produced; ``finish()`` flushes what is left;
``state`` is a ``ProgressState`` snapshot for the UI. ``classify_exit`` turns the exit status
plus that state into success or a failure kind with a user-facing message.

This module holds the parser and is the public import point; the pieces live beside it:
``progress_model`` (constants, error kinds, events, state), ``tqdm_lines`` (tqdm bars),
``log_patterns`` (the line patterns, and what the engines print), ``rich_records`` (rich log
records, per-stream state) and ``exit_status`` (``classify_exit``).

Pure standard library: this runs inside the web UI's process.
"""

from __future__ import annotations

import codecs
import math
import os
import re

from .exit_status import classify_exit
from .log_patterns import (
    _ANSI, _ARGPARSE_ERROR, _EPOCH, _MODEL_PATH, _MODEL_SAVED, _MODEL_SUFFIX, _NOT_FOUND, _OUR_ERROR, _OUR_WARNING,
    _PROCESSES, _RANK, _REMOVING, _RICH, _RICH_LEVEL_FIRST, _SAMPLE, _SAVING, _SPECIFIC, _STDLIB_LOG, _STOPPED,
    _SUMMARY_KEYS, _SUMMARY_LINE, _SUMMARY_START, _TRACEBACK, _same,
)
from .progress_model import (
    ERROR_KINDS, MAX_WARNINGS, RUN_START_MARKER, TRAINING_BAR, VALIDATION_BARS, ErrorKind, ProgressEvent, ProgressState, _clip,
    describe_error,
)
from .env_phase import ENV_PREFIX, env_setup_line
from .rich_records import _Record, _Stream
from .loss_points import add_validation_point, append_point
from .tqdm_lines import TqdmUpdate, _loss_value, parse_duration, parse_rate, parse_tqdm

__all__ = [
    "ERROR_KINDS", "ErrorKind", "ProgressEvent", "ProgressParser", "ProgressState", "classify_exit",
    "describe_error", "parse_duration", "parse_rate", "parse_tqdm", "TqdmUpdate",
]


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
        s.phase = s.phase_detail = None
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
        if text.startswith(ENV_PREFIX):
            env_setup_line(self._state, text[len(ENV_PREFIX):].strip())
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
        if bar.desc in VALIDATION_BARS:
            add_validation_point(self._state.val_loss_history, bar, self._state.step)
            return
        if bar.desc != TRAINING_BAR:
            return
        self._state.phase = self._state.phase_detail = None  # training has begun
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
        append_point(self._state.loss_history, point)

    def _commit_pending_loss(self) -> None:
        pending, self._pending_loss = self._pending_loss, None
        if pending is not None:
            self._append_loss(pending)

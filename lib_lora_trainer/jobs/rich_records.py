"""Unwrapping rich log records (``_Record``) and the parser's per-stream reading state (``_Stream``)."""

from __future__ import annotations

import unicodedata

from .log_patterns import _RICH_PATH


def _cells(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 0 if unicodedata.combining(c) else 1
               for c in text)


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

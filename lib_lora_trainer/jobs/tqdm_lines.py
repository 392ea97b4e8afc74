"""tqdm status lines: ``parse_tqdm`` (a ``TqdmUpdate``), ``parse_duration``, ``parse_rate``
and the bar's ``avr_loss`` value."""

from __future__ import annotations

import re
from dataclasses import dataclass


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

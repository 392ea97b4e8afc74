"""The human form of a dataset report for the terminal: a summary and a table of problems with fixes
(the fixes in the CLI's words: commands and flags; the tab has its own, ui/report_html.py)."""

from __future__ import annotations

import shutil
import textwrap

from .check import DatasetReport


def _wrap(text: str, width: int) -> list[str]:
    return textwrap.wrap(text, width=width, break_long_words=True, break_on_hyphens=False) or [""]


def render_report(report: DatasetReport, width: int | None = None) -> str:
    width = width or max(100, min(160, shutil.get_terminal_size((120, 24)).columns))
    s = report.summary()
    formats = ", ".join(f"{n} {f}" for f, n in s["formats"].items()) or "none"
    lines = [
        f"Dataset: {report.root}",
        f"  {len(report.scan.images)} images ({s['usable_images']} usable: {formats}), "
        f"{len(report.scan.captions)} captions; training resolution {report.resolution}",
    ]
    if s["min_short_side"] is not None:
        lines.append(f"  shorter side: smallest {s['min_short_side']} px, median {s['median_short_side']} px")
    if report.trigger:
        lines.append(f"  trigger word: {report.trigger}")
    if report.token_check != "ok":
        lines.append(f"  caption length check {report.token_check}")
    lines.append("")
    if not report.problems:
        lines.append("No problems found.")
        return "\n".join(lines) + "\n"
    cols = [("SEVERITY", 8), ("CODE", 18), ("FILE", 28)]
    rest = width - sum(w + 2 for _, w in cols)
    problem_w = max(24, rest // 2)
    fix_w = max(24, rest - problem_w - 2)
    header = "  ".join(name.ljust(w) for name, w in cols) + "  " + "PROBLEM".ljust(problem_w) + "  FIX"
    lines += [header, "-" * min(width, len(header) + fix_w)]
    for p in report.problems:
        cells = [_wrap(p.severity.upper(), 8), _wrap(p.code, 18), _wrap(p.path, 28),
                 _wrap(p.message, problem_w), _wrap(p.fix_for("cli"), fix_w)]
        widths = [8, 18, 28, problem_w, fix_w]
        for row in range(max(len(c) for c in cells)):
            parts = [(c[row] if row < len(c) else "").ljust(w) for c, w in zip(cells, widths)]
            lines.append("  ".join(parts).rstrip())
    lines.append("")
    lines.append(f"{len(report.errors)} errors, {len(report.warnings)} warnings.")
    return "\n".join(lines) + "\n"

"""A dataset report as an HTML table for the tab (escaped: file names come from users).

Fixes are shown in the tab's words (buttons and fields, dataset/problems.py ACTIONS), never as
CLI commands or flags."""

from __future__ import annotations

from html import escape

from lib_lora_trainer.dataset.check import DatasetReport
from lib_lora_trainer.dataset.problems import CHECKS

def error_html(message: str) -> str:
    return f'<p class="lt-error">{escape(str(message))}</p>'


def warning_html(message: str) -> str:
    return f'<p class="lt-warning">{escape(str(message))}</p>'


PREPARE_NOTE = ('"Prepare" makes a fixed copy (your files are never changed); Start training prepares its own '
                "copy the same way.")


def report_to_html(report: DatasetReport) -> str:
    s = report.summary()
    formats = ", ".join(f"{n} {escape(str(f))}" for f, n in s["formats"].items()) or "none"
    trigger = f", trigger word <code>{escape(report.trigger)}</code>" if report.trigger else ", no trigger word"
    parts = [
        '<div class="lt-summary">',
        f"<b>{len(report.scan.images)}</b> images ({s['usable_images']} usable: {formats}), "
        f"<b>{len(report.scan.captions)}</b> captions; "
        f"<span class=\"lt-error\">{s['errors']} errors</span>, "
        f"<span class=\"lt-warning\">{s['warnings']} warnings</span>",
        f'<br><span class="lt-checked-for">Checked for training at <b>{report.resolution} px</b>{trigger}.</span>',
        "</div>",
    ]
    if not report.problems:
        parts.append("<p>No problems found.</p>")
        return "".join(parts)
    parts.append("<table><thead><tr><th>Severity</th><th>Code</th><th>File</th><th>Problem</th>"
                 "<th>Fix</th></tr></thead><tbody>")
    for p in report.problems:
        parts.append(
            f'<tr><td class="lt-{p.severity}">{p.severity}</td><td><code>{escape(p.code)}</code></td>'
            f"<td>{escape(p.path)}</td><td>{escape(p.message)}</td><td>{escape(p.fix_for('ui'))}</td></tr>")
    parts.append("</tbody></table>")
    if any("prepare" in CHECKS[p.code].actions for p in report.problems):
        parts.append(f'<p class="lt-note">{escape(PREPARE_NOTE)}</p>')
    return "".join(parts)


"""A dataset report as an HTML table for the tab (escaped: file names come from users)."""

from __future__ import annotations

from html import escape

from lib_lora_trainer.dataset.check import DatasetReport


def report_to_html(report: DatasetReport) -> str:
    s = report.summary()
    formats = ", ".join(f"{n} {escape(str(f))}" for f, n in s["formats"].items()) or "none"
    parts = [
        '<div class="lt-summary">',
        f"<b>{len(report.scan.images)}</b> images ({s['usable_images']} usable: {formats}), "
        f"<b>{len(report.scan.captions)}</b> captions; "
        f"<span class=\"lt-error\">{s['errors']} errors</span>, "
        f"<span class=\"lt-warning\">{s['warnings']} warnings</span>",
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
            f"<td>{escape(p.path)}</td><td>{escape(p.message)}</td><td>{escape(p.fix)}</td></tr>")
    parts.append("</tbody></table>")
    return "".join(parts)

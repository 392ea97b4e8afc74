"""How a job looks in the tab: progress line, loss chart, log tail, failure banner, queue.

Pure functions of a Job (from the job service's SQLite store) and its files, so a reload or a
second browser tab shows the same thing, and the unit tests need no browser.
"""

from __future__ import annotations

import time
from html import escape
from pathlib import Path

from lib_lora_trainer.jobs import states as S
from lib_lora_trainer.jobs.progress_model import ERROR_KINDS
from lib_lora_trainer.jobs.supervise import STDERR, STDOUT

SAMPLE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
TAIL_BYTES = 32 * 1024


def job_label(job) -> str:
    return f"{job.id} {job.name}"


def job_id_of(label: str | None) -> str | None:
    return (label or "").split(" ", 1)[0] or None


def pick_job(jobs: list, selected: str | None):
    """The job to show: the selected one; else the running one, the oldest queued, the newest."""
    by_id = {j.id: j for j in jobs}
    chosen = by_id.get(job_id_of(selected) or "")
    if chosen is not None:
        return chosen
    for state in (S.RUNNING, S.PREPARING):
        running = [j for j in jobs if j.state == state]
        if running:
            return running[-1]
    queued = [j for j in jobs if j.state == S.QUEUED]
    if queued:
        return queued[0]
    return jobs[-1] if jobs else None


def _clock(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = int(max(0, seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def progress_html(job, now: float | None = None) -> str:
    """The bar with step/total, it/s, ETA, loss; `data-stamp` changes on every refresh (the
    browser script watches it to pace its polling)."""
    stamp = f'{(now or time.time()):.3f}'
    if job is None:
        return f'<div class="lt-progress" data-stamp="{stamp}"><p>No training job yet.</p></div>'
    p = job.progress or {}
    step, total = int(p.get("step") or 0), int(p.get("total") or 0)
    pct = 100.0 * step / total if total else 0.0
    if job.state == S.SUCCEEDED:
        pct = 100.0
    rate = p.get("rate_it_s")
    loss = p.get("loss")
    setting_up = job.state == S.RUNNING and p.get("phase") == "setup"
    shown = "setting up" if setting_up else job.state
    parts = [f'<span class="lt-state lt-state-{escape(job.state)}">{escape(shown)}</span>',
             f'<span class="lt-steps" id="lora_trainer_steps">step {step}/{total or "?"}</span>']
    if setting_up:  # first use: the trainer environment is made before step 1 (minutes, once)
        parts.append(escape(f"trainer environment, {p.get('phase_detail') or 'starting'}"))
    if rate:
        parts.append(f"{rate:.2f} it/s")
    if job.state == S.RUNNING and not setting_up:
        parts.append(f"ETA {_clock(p.get('eta_s'))}")
    if loss is not None:
        parts.append(f"loss {loss:.4f}")
    return (f'<div class="lt-progress" data-stamp="{stamp}" data-state="{escape(job.state)}" data-step="{step}">'
            f'<div class="lt-job-title">{escape(job.name)} <small>({escape(job.id)}, {escape(job.engine)} engine)'
            f'</small></div>'
            f'<div class="lt-bar"><div class="lt-bar-fill" style="width:{pct:.1f}%"></div></div>'
            f'<div class="lt-progress-text">{" &middot; ".join(parts)}</div></div>')


def _finite(history) -> list[tuple[float, float]]:
    return [(float(s), float(v)) for s, v in (history or []) if v is not None and v == v]


def loss_svg(history: list, width: int = 640, height: int = 160, validation: list | None = None) -> str:
    """The loss curve as inline SVG (no plotting library in A1111's process); `validation`: the
    held-out pictures' loss at each validation (a second line with dots, same axes)."""
    points, held = _finite(history), _finite(validation)
    if len(points) < 2:
        return '<div class="lt-loss"><p>The loss chart appears after two steps.</p></div>'
    xs, ys = [p[0] for p in points + held], [p[1] for p in points + held]
    x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
    pad = 30
    sx = (width - 2 * pad) / ((x1 - x0) or 1)
    sy = (height - 2 * pad) / ((y1 - y0) or 1)

    def xy(x, y):
        return f"{pad + (x - x0) * sx:.1f}", f"{height - pad - (y - y0) * sy:.1f}"
    coords = " ".join(",".join(xy(x, y)) for x, y in points)
    second = ""
    if held:
        second = (f'<polyline class="lt-val-loss" fill="none" stroke="#2a9d8f" stroke-width="2" stroke-dasharray="5,3" '
                  f'points="{" ".join(",".join(xy(x, y)) for x, y in held)}"/>'
                  + "".join(f'<circle cx="{xy(x, y)[0]}" cy="{xy(x, y)[1]}" r="3" fill="#2a9d8f"/>' for x, y in held)
                  + f'<text x="{width - pad}" y="{pad - 8}" font-size="11" text-anchor="end" fill="#2a9d8f">'
                    f'held-out loss {held[-1][1]:.4g} (step {int(held[-1][0])})</text>')
    return (f'<div class="lt-loss"><svg viewBox="0 0 {width} {height}" width="100%" height="{height}" '
            f'role="img" aria-label="loss curve">'
            f'<rect x="0" y="0" width="{width}" height="{height}" fill="none"/>'
            f'<line x1="{pad}" y1="{height - pad}" x2="{width - pad}" y2="{height - pad}" stroke="#888"/>'
            f'<line x1="{pad}" y1="{pad}" x2="{pad}" y2="{height - pad}" stroke="#888"/>'
            f'<polyline fill="none" stroke="#e76f51" stroke-width="2" points="{coords}"/>{second}'
            f'<text x="{pad + 4}" y="{pad - 8}" font-size="11" fill="currentColor">loss {y1:.4g}</text>'
            f'<text x="{pad + 4}" y="{height - pad - 4}" font-size="11" fill="currentColor">{y0:.4g}</text>'
            f'<text x="{width - pad}" y="{height - 10}" font-size="11" text-anchor="end" '
            f'fill="currentColor">step {int(x1)}</text></svg></div>')


def _tail_lines(path: Path, n: int) -> list[str]:
    try:
        with open(path, "rb") as f:
            f.seek(0, 2)
            size = f.tell()
            f.seek(max(0, size - TAIL_BYTES))
            data = f.read().decode("utf-8", errors="replace")
    except OSError:
        return []
    # tqdm redraws with \r: each redraw is a line here, and only the newest ones are kept.
    lines = [line.rstrip() for line in data.replace("\r", "\n").split("\n") if line.strip()]
    return lines[-n:]


def log_tail(job, n: int = 40) -> str:
    """The end of the job's logs (stderr, where tqdm and errors go, last)."""
    if job is None:
        return ""
    folder = Path(job.job_dir)
    out = _tail_lines(folder / STDOUT, n // 2)
    err = _tail_lines(folder / STDERR, n)
    lines = out + err
    return "\n".join(lines[-n:])


def banner_html(job) -> str:
    """A red banner with the reason and the log tail when a job failed; a note when stopped."""
    if job is None:
        return ""
    if job.state == S.CANCELLED:
        return ('<div class="lt-banner lt-banner-info">Stopped: the last saved state is kept. '
                'Press Resume to continue from it.</div>')
    if job.state not in (S.FAILED, S.INTERRUPTED):
        return ""
    kind = ERROR_KINDS.get(job.error_kind or "")
    title = kind.title if kind else "Training failed"
    fix = f"<p><b>Fix:</b> {escape(kind.fix)}</p>" if kind else ""
    tail = escape(log_tail(job, 15))
    return (f'<div class="lt-banner lt-banner-error" id="lora_trainer_error"><b>{escape(title)}</b>'
            f"<p>{escape(job.error or '')}</p>{fix}<pre>{tail}</pre></div>")


def queue_html(jobs: list, shown: str | None = None, limit: int = 12) -> str:
    if not jobs:
        return '<p class="lt-note">No jobs yet.</p>'
    rows = []
    for job in reversed(jobs[-limit:]):
        p = job.progress or {}
        mark = ' class="lt-shown"' if job.id == shown else ""
        rows.append(f"<tr{mark}><td>{escape(job.id)}</td><td>{escape(job.name)}</td><td>{escape(job.state)}</td>"
                    f"<td>{int(p.get('step') or 0)}/{int(p.get('total') or 0)}</td>"
                    f"<td>{time.strftime('%Y-%m-%d %H:%M', time.localtime(job.created_at))}</td></tr>")
    return ('<table class="lt-queue"><thead><tr><th>Job</th><th>Name</th><th>State</th><th>Steps</th>'
            f'<th>Created</th></tr></thead><tbody>{"".join(rows)}</tbody></table>')


def sample_images(job) -> list[str]:
    if job is None:
        return []
    folder = Path(job.job_dir) / "output" / "sample"
    try:
        return sorted(str(p) for p in folder.iterdir() if p.suffix.lower() in SAMPLE_SUFFIXES and p.is_file())
    except OSError:
        return []

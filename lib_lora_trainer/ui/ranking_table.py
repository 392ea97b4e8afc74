"""The test's checkpoint x weight ranking as a table beside the grid: the recommendation in one
sentence, every cell best first, and each cell of the installed file clickable to send its
`<lora:name:w>, trigger` to txt2img (javascript/lora_trainer.js); the Install button of the Result
section puts the recommended checkpoint in place when it is an earlier file."""

from __future__ import annotations

from html import escape
from pathlib import Path

NO_RANKING = ('<p class="lt-note">The ranking of checkpoints and weights appears here after the test '
              '(Test this LoRA; all saved files are compared when the job saved more than one).</p>')


def read_ranking(job) -> dict | None:
    from lib_lora_trainer.evaluate.job_eval import report_for_job

    return (report_for_job(Path(job.job_dir)) or {}).get("ranking") or None


def ranking_html(job, details) -> str:
    """`details`: read_lora_details of the installed file (its name and activation text)."""
    from lib_lora_trainer.evaluate.recommend import installed_checkpoint

    ranking = read_ranking(job)
    if not ranking:
        return NO_RANKING
    if not ranking.get("cells"):
        return f'<p class="lt-note">{escape(ranking.get("sentence", ""))}</p>'
    current = installed_checkpoint(job)
    trigger = details.sidecar.activation_text if details.sidecar else ""
    rows = []
    for i, c in enumerate(ranking["cells"]):
        prompt = f"<lora:{details.name}:{c['weight']:g}>" + (f", {trigger}" if trigger else "")
        follow = "" if c.get("following") is None else f"{c['following']:.2f}"
        if c["checkpoint"] == current:
            weight = (f'<button class="lt-rank-send" data-lt-prompt="{escape(prompt)}" '
                      f'title="Send {escape(prompt)} to txt2img">{c["weight"]:g}</button>')
        else:
            weight = f'<span title="not the installed file">{c["weight"]:g}</span>'
        css = (" class='lt-rank-best'" if i == 0 and ranking.get("confident")
               else "" if c["usable"] else " class='lt-rank-unusable'")
        rows.append(f"<tr{css}><td>{escape(c['checkpoint'])}</td><td>{weight}</td><td>{c['fidelity']:.2f}</td>"
                    f"<td>{follow}</td><td>{'yes' if c['usable'] else escape(c['why_not'])}</td></tr>")
    best = ranking["best"]
    install = ("" if best["checkpoint"] == current or not ranking.get("confident") else
               f'<p class="lt-note">The recommended file is not the installed one ({escape(current)}): '
               f'"Install the recommended checkpoint" puts {escape(best["checkpoint"])} in its place.</p>')
    return (f'<div class="lt-ranking" data-best="{escape(best["checkpoint"])}:{best["weight"]:g}">'
            f'<p><b>{escape(ranking["sentence"])}</b></p>{install}'
            f'<table><tr><th>checkpoint</th><th>weight</th><th>{escape(ranking["metric"])}</th>'
            f'<th>prompt following</th><th>usable</th></tr>{"".join(rows)}</table>'
            '<p class="lt-note">Click a weight to send that LoRA tag to txt2img.</p></div>')

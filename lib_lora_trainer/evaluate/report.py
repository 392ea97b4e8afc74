"""The evaluation report: report.json (everything) and report.md (what a person reads)."""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path

from lib_lora_trainer import atomic

from .run import EvalResult

# Shown first in the tables, in this order, when present.
HEADLINE = ("face_identity", "face_identity_holdout", "face_found", "concept", "prompt_following", "change_vs_base", "dataset_colour_similarity", "holdout_colour_similarity",
            "seed_diversity", "sharpness", "clip_i", "clip_t", "dino")


def write_report(result: EvalResult, out_dir: Path) -> tuple[Path, Path]:
    out_dir = Path(out_dir)
    json_path, md_path = out_dir / "report.json", out_dir / "report.md"
    atomic.write_text(json_path, json.dumps(asdict(result), indent=1, default=str) + "\n")
    atomic.write_text(md_path, render_markdown(result, out_dir))
    return json_path, md_path


def _table(per_weight: dict) -> list[str]:
    keys = [k for k in HEADLINE if any(k in row for row in per_weight.values())]
    lines = ["| weight | " + " | ".join(keys) + " |", "|---" * (len(keys) + 1) + "|"]
    for w, row in sorted(per_weight.items()):
        lines.append(f"| {w} | " + " | ".join("" if k not in row else f"{row[k]:.3f}" for k in keys) + " |")
    return lines


def _ranking(ranking: dict) -> list[str]:
    if not ranking or not ranking.get("sentence"):
        return []
    lines = ["## Which checkpoint and weight", "", ranking["sentence"], ""]
    if ranking.get("cells"):
        lines += [f"| checkpoint | weight | {ranking['metric']} | prompt following | seed diversity | usable |",
                  "|---|---|---|---|---|---|"]
        for c in ranking["cells"]:
            follow = "" if c["following"] is None else f"{c['following']:.3f}"
            diversity = c["scores"].get("seed_diversity")
            lines.append(f"| {c['checkpoint']} | {c['weight']:g} | {c['fidelity']:.3f} | {follow} | "
                         f"{'' if diversity is None else f'{diversity:.3f}'} | {'yes' if c['usable'] else c['why_not']} |")
        lines.append("")
    return lines


def render_markdown(result: EvalResult, out_dir: Path) -> str:
    t = result.target
    v = result.verdict
    lines = [f"# Test report: {Path(t['lora']).name}", "",
             f"**Verdict: {v.get('label', '?')}** - {v.get('reason', '')}. "
             f"Recommended weight: {v.get('recommended_weight')} (judged from {v.get('basis')}).", "",
             f"Trigger `{t['trigger']}`; {len(result.plan['prompts'])} prompts x weights {result.plan['weights']}, "
             f"seeds {result.plan['seeds']}, {result.plan['sampler']}, {result.plan['steps']} steps, "
             f"cfg {result.plan['cfg_scale']}; {result.seconds} s.", ""]
    lines += _ranking(result.ranking)
    if result.identity:
        lines += ["Character read off the dataset: " + ", ".join(f"{k}={val}" for k, val in result.identity.items()), ""]
    for group, title in (("dataset", "Dataset captions"), ("novel", "Novel prompts (not in the dataset)")):
        if group in result.summary:
            lines += [f"## {title}", "", *_table(result.summary[group]), ""]
    lines += ["## Grids", ""]
    for label, path in result.grids.items():
        rel = os.path.relpath(path, out_dir)
        lines += [f"### {label}", "", f"![{label}]({rel})", ""]
    if result.preview:
        lines += [f"Preview written: `{result.preview}`", ""]
    if result.notes:
        lines += ["## Scorers", ""] + [f"- {name}: {text}" for name, text in result.notes.items()] + [""]
    if result.skipped_scorers:
        lines += ["## Scores not computed", ""]
        lines += [f"- {name}: {reason}" for name, reason in result.skipped_scorers.items()]
        lines.append("")
    lines += ["## What the scores mean", "",
              "- face_identity: similarity of the generated faces to the dataset's faces, 1 - distance / 1.2 "
              "(dlib's face embedding; 0.5 = its same-person threshold); face_identity_holdout: the same against "
              "the held-out pictures; face_found: share of the pictures with a face.",
              "- concept: probability the demo attribute reader gives to the character's identity "
              "(attributes shared by >= 80% of the dataset), 0..1.",
              "- prompt_following: probability it gives to the other attributes the prompt asks for, 0..1.",
              "- change_vs_base: mean |pixel difference| to the same seed at weight 0 (0..1).",
              "- dataset_colour_similarity: colour-histogram intersection with the dataset pictures (0..1).",
              "- seed_diversity: mean |pixel difference| between seeds of one cell; near 0 means collapse.",
              "- sharpness: variance of the Laplacian (higher is sharper).", ""]
    return "\n".join(lines)

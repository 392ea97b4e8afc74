"""Evaluate what a job produced, or any LoRA file: find its model, dataset, trigger and
intermediate checkpoints, run the plan and write the report into `<job>/test/` (or beside the LoRA)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from .plan import DEFAULT_STEPS_SWEEP, THESIS_SAMPLERS, PlanError
from .run import EvalTarget, Evaluation, default_plan

REPORT_DIR = "test"


@dataclass
class Subject:
    target: EvalTarget
    model: Path
    out_dir: Path
    checkpoints: list[Path]
    resolution: int | None = None   # the training resolution: test at the size it learned


def intermediate_checkpoints(output_dir: Path, name: str) -> list[Path]:
    """`<name>-000001.safetensors`... (sd-scripts' per-epoch / per-step files), oldest first."""
    pattern = re.compile(rf"^{re.escape(name)}-(?:step)?(\d{{6,8}})\.safetensors$")
    found = sorted((int(m.group(1)), p) for p in output_dir.glob("*.safetensors") if (m := pattern.match(p.name)))
    return [p for _, p in found]


def subject_for_job(job) -> Subject:
    if job.state != "succeeded" or not job.installed_path:
        raise PlanError("job", f"job {job.id} is {job.state}; only a succeeded job has a LoRA to test")
    cfg, folder = job.config, Path(job.job_dir)
    lora = Path(job.installed_path)
    holdout = folder / "holdout"
    target = EvalTarget(lora=lora, trigger=cfg.get("trigger") or lora.stem, class_token=cfg.get("class_token"),
                        dataset_dir=folder / "dataset" / "img", holdout_dir=holdout if holdout.is_dir() else None,
                        preferred_weight=None)
    res = cfg.get("resolution")
    return Subject(target, Path(cfg["base_model"]), folder / REPORT_DIR,
                   intermediate_checkpoints(folder / "output", cfg.get("name") or lora.stem),
                   int(res) if isinstance(res, (int, float)) or str(res).isdigit() else None)


def subject_for_file(lora: Path, model: Path | None, trigger: str | None, dataset: Path | None) -> Subject:
    from lib_lora_trainer.lora_file.sidecar import read_sidecar

    if not lora.is_file():
        raise PlanError("lora", f"{lora} does not exist")
    if model is None:
        raise PlanError("model", "testing a LoRA file needs --model (the checkpoint it was trained on)")
    sidecar = read_sidecar(lora)
    trigger = trigger or (sidecar.activation_text.split(",")[0].strip() if sidecar and sidecar.activation_text else "")
    if not trigger:
        raise PlanError("trigger", f"no --trigger given and {lora.with_suffix('.json').name} has no activation text")
    target = EvalTarget(lora=lora, trigger=trigger, dataset_dir=dataset,
                        preferred_weight=sidecar.preferred_weight if sidecar and sidecar.preferred_weight else None)
    return Subject(target, model, lora.parent / f"{lora.stem}.test", [])


def evaluate_subject(subject: Subject, sweeps: set[str], renderer=None, scorers=None, seeds: int = 4,
                     say=print, progress=None, allow_downloads: bool = False, **plan_overrides):
    """Run the test and write its report into subject.out_dir; its progress (pictures done / in all)
    and, on failure, the error go to `running.json` there (evaluate/progress.py) unless `progress`
    is given."""
    from .progress import ProgressFile

    tracker = ProgressFile(subject.out_dir) if progress is None else progress
    try:
        if scorers is None:
            from .scoring import default_scorers

            scorers = default_scorers(allow_downloads, say)
        return _evaluate(subject, sweeps, renderer, scorers, seeds, say, tracker, plan_overrides)
    except BaseException as exc:
        if hasattr(tracker, "fail"):
            tracker.fail(f"{type(exc).__name__}: {exc}")
        raise


def _evaluate(subject: Subject, sweeps: set[str], renderer, scorers, seeds: int, say, progress, plan_overrides):
    from .renderer import DiffusersRenderer
    from .report import write_report
    from .scoring import default_scorers

    extra = dict(plan_overrides)
    if subject.resolution:
        extra.setdefault("width", subject.resolution)
        extra.setdefault("height", subject.resolution)
    if "samplers" in sweeps:
        extra.setdefault("samplers", THESIS_SAMPLERS)
    if "steps" in sweeps:
        extra.setdefault("steps_sweep", DEFAULT_STEPS_SWEEP)
    if "checkpoints" in sweeps:
        extra["checkpoints"] = subject.checkpoints
    plan = default_plan(subject.target, seeds=tuple(range(1, seeds + 1)), **extra)
    evaluation = Evaluation(subject.target, plan, subject.out_dir, renderer or DiffusersRenderer(subject.model),
                            default_scorers() if scorers is None else scorers, say=say, progress=progress)
    result = evaluation.run()
    json_path, md_path = write_report(result, subject.out_dir)
    from .recommend import set_preferred_weight

    weight = set_preferred_weight(subject.target.lora, result.ranking)
    if weight is not None:
        say(f"preferred weight of {Path(subject.target.lora).name}: {weight:g} ({result.ranking['sentence']})")
    return result, json_path, md_path


def report_for_job(job_dir: Path) -> dict | None:
    path = Path(job_dir) / REPORT_DIR / "report.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return None

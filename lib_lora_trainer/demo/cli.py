"""`python -m lib_lora_trainer demo`: the main job on the embedded default, end to end, offline.

photos of one character (with mistakes) -> dataset check -> job service (prepare, builtin engine,
install into a demo Lora folder with its sidecar) -> comparison grid + scored report.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

from lib_lora_trainer.dataset.check import check_dataset
from lib_lora_trainer.dataset.report_text import render_report

from .demo_model import install_demo_model
from .model_arch import RESOLUTION
from .sample_dataset import DEMO_CLASS, DEMO_TRIGGER, write_sample_dataset

DEMO_PRESET = "cpu-demo"
DEMO_LORA_NAME = f"{DEMO_TRIGGER}_v1"


# A1111's default sampler; on the demo model 12 of its steps score like 20 of Euler a (measured on one
# LoRA: concept at weight 1 on novel prompts 0.745 vs 0.735, prompt following 0.48 vs 0.51) in half the time.
TEST_SAMPLER, TEST_STEPS = "DPM++ 2M", 12


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="train and test a LoRA on the embedded demo model and dataset (offline, CPU)")
    p.add_argument("--out", type=Path, default=Path("out/demo"), help="where everything is written")
    p.add_argument("--seeds", type=int, default=3, help="pictures per grid cell used for the scores")
    p.set_defaults(func=run_demo)


def _step(n: int, text: str) -> None:
    print(f"\n[{n}/5] {text}", flush=True)


def run_demo(args: argparse.Namespace) -> int:
    start = time.perf_counter()
    out: Path = args.out.resolve()
    if out.exists():
        shutil.rmtree(out)  # the demo folder is ours: start from a clean slate each run
    timings: dict[str, float] = {}

    _step(1, f"dataset check: photos of '{DEMO_TRIGGER}' with the mistakes real folders have")
    t = time.perf_counter()
    photos = write_sample_dataset(out / "photos")
    report = check_dataset(photos, RESOLUTION, DEMO_TRIGGER)
    sys.stdout.write(render_report(report))
    timings["check"] = time.perf_counter() - t

    _step(2, f"job: prepare (fix, crop, resize to {RESOLUTION} px), then train with the builtin engine")
    t = time.perf_counter()
    model = install_demo_model(out / "models")
    job = train_demo_lora(out, photos, model)
    timings["train"] = time.perf_counter() - t
    if job.state != "succeeded":
        print(f"training {job.state}: {job.error_kind}: {job.error}", file=sys.stderr)
        return 1
    lora = Path(job.installed_path)
    print(f"installed {lora} (+ {lora.with_suffix('.json').name} sidecar for A1111's Lora tab)")

    _step(3, f"test: same seeds at LoRA weight 0 (= base model), 0.5 and 1.0; dataset captions and novel prompts "
             f"({TEST_SAMPLER}, {TEST_STEPS} steps, A1111's default sampler)")
    t = time.perf_counter()
    result, json_path, md_path = evaluate_demo_lora(out, job, lora, model, args.seeds)
    timings["test"] = time.perf_counter() - t

    _step(4, "scores (demo attribute reader; 0..1)")
    _print_scores(result)
    print(f"  which weight to use: {result.ranking.get('sentence') or 'no ranking'}")

    _step(5, "where everything is")
    total = time.perf_counter() - start
    print(f"  photos:   {photos}\n  model:    {model}\n  job:      {job.job_dir}\n  LoRA:     {lora}\n"
          f"  grid:     {result.grids['weights']}\n  report:   {md_path}\n            {json_path}\n"
          f"  preview:  {result.preview}")
    print(f"\nDone in {total:.1f} s (check {timings['check']:.1f}, train {timings['train']:.1f}, "
          f"test {timings['test']:.1f}). Verdict: {result.verdict['label']}.")
    (out / "timings.json").write_text(json.dumps({**timings, "total": total}, indent=1) + "\n")
    return 0


def train_demo_lora(out: Path, photos: Path, model: Path, overrides: dict | None = None):
    from lib_lora_trainer.config.presets import resolve_config
    from lib_lora_trainer.jobs.service import JobService

    cfg = resolve_config(DEMO_PRESET, {"name": DEMO_LORA_NAME, "trigger": DEMO_TRIGGER, "class_token": DEMO_CLASS,
                                       "base_model": str(model), "engine": "builtin", **(overrides or {})})
    service = JobService(data_dir=out / "data", lora_dir=out / "Lora")
    job = service.submit(photos, cfg, crop="center")
    plan = json.loads((Path(job.job_dir) / "plan.json").read_text())
    print(f"job {job.id}: {plan['num_images']} images x {cfg.repeats} repeats x {cfg.epochs} epochs / "
          f"batch {cfg.batch_size} = {plan['total_steps']} steps, rank {cfg.network_dim}, lr {cfg.learning_rate}")
    last = [-1]

    def show(j):
        p = j.progress or {}
        step = p.get("step") or 0
        if step != last[0] and (step - last[0] >= 25 or step == p.get("total")):
            loss = f" loss {p['loss']:.4f}" if p.get("loss") is not None else ""
            rate = f" {p['rate_it_s']:.1f} it/s" if p.get("rate_it_s") else ""
            print(f"  {j.state} step {step}/{p.get('total')}{rate}{loss}", flush=True)
            last[0] = step
    return service.wait(job.id, poll_s=0.5, on_tick=show)


def evaluate_demo_lora(out: Path, job, lora: Path, model: Path, seeds: int):
    from lib_lora_trainer.evaluate.renderer import DiffusersRenderer
    from lib_lora_trainer.evaluate.report import write_report
    from lib_lora_trainer.evaluate.run import EvalTarget, Evaluation, default_plan
    from lib_lora_trainer.evaluate.scoring import DemoWorldScorer, ImageStatsScorer

    img_dir = Path(job.job_dir) / "dataset" / "img"
    target = EvalTarget(lora=lora, trigger=DEMO_TRIGGER, dataset_dir=img_dir, class_token=DEMO_CLASS)
    plan = default_plan(target, weights=(0.0, 0.5, 1.0), seeds=tuple(range(1, seeds + 1)), sampler=TEST_SAMPLER,
                        steps=TEST_STEPS, cfg_scale=5.0, preview_weight=1.0)
    evaluation = Evaluation(target, plan, out / "test", DiffusersRenderer(model),
                            [ImageStatsScorer(), DemoWorldScorer()], say=lambda m: None)
    result = evaluation.run()
    json_path, md_path = write_report(result, out / "test")
    return result, json_path, md_path


def _print_scores(result) -> None:
    print(f"  character read off the dataset: {result.identity}")
    print(f"  {'weight':>6}  {'concept (dataset prompts)':>26}  {'concept (novel)':>16}  {'prompt following (novel)':>25}")
    data, novel = result.summary.get("dataset", {}), result.summary.get("novel", {})
    for w in sorted(novel or data):
        c1 = data.get(w, {}).get("concept")
        c2 = novel.get(w, {}).get("concept")
        f2 = novel.get(w, {}).get("prompt_following")
        fmt = lambda v: "n/a" if v is None else f"{v:.3f}"  # noqa: E731
        print(f"  {w:>6}  {fmt(c1):>26}  {fmt(c2):>16}  {fmt(f2):>25}")
    v = result.verdict
    print(f"  verdict: {v['label']} - {v['reason']}")

"""`python -m lib_lora_trainer test JOB_OR_LORA [--sweep weights,samplers,steps,checkpoints,combine]`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .plan import SWEEPS, PlanError, parse_sweeps


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("test", help="generate comparison grids and scores for a trained LoRA (job id or file)")
    p.add_argument("subject", help="a job id (see `jobs list`) or a LoRA .safetensors file")
    p.add_argument("--sweep", default="weights", help=f"comma list of {', '.join(SWEEPS)} (weights always)")
    p.add_argument("--model", type=Path, help="base checkpoint (needed for a LoRA file)")
    p.add_argument("--trigger", help="trigger word (default: the sidecar's activation text)")
    p.add_argument("--dataset", type=Path, help="training pictures with captions (for dataset prompts and scores)")
    p.add_argument("--second-lora", type=Path, help="another LoRA to combine with (for --sweep combine)")
    p.add_argument("--seeds", type=int, default=4, help="pictures per cell for the scores (grid shows the first)")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--cfg", type=float, default=7.0)
    p.add_argument("--sampler", default="Euler a")
    p.add_argument("--data-dir", type=Path, help="job service data folder (default: the extension's)")
    p.add_argument("--allow-downloads", action="store_true",
                   help="CLIP-I/CLIP-T/DINO: download the weights if missing (once; see `scorers status`)")
    p.set_defaults(func=run_test)

    w = sub.add_parser("scorers", help="the CLIP / DINOv2 weights of the test's CLIP-I, CLIP-T and DINO scores")
    w.add_argument("action", choices=("status", "download"))
    w.add_argument("which", nargs="?", default="all", choices=("all", "clip", "dino"))
    w.set_defaults(func=run_scorers)


def run_scorers(args: argparse.Namespace) -> int:
    """status: what is where, what a download would fetch and how big; download: fetch it now."""
    from .scorer_weights import MODELS, download, downloads_allowed, has_weights, model_dir

    kinds = list(MODELS) if args.which == "all" else [args.which]
    failed = 0
    for kind in kinds:
        model, folder = MODELS[kind], model_dir(kind)
        if has_weights(folder):
            print(f"{kind}: ready in {folder}")
        elif args.action == "status":
            print(f"{kind}: missing in {folder}; `scorers download {kind}` fetches {model.describe()} from "
                  f"the Hugging Face hub (the LoRA test downloads it by itself: {'yes' if downloads_allowed() else 'no'}; "
                  "yes with LORA_TRAINER_SCORER_DOWNLOADS=1 or the tab's setting)")
        else:
            try:
                download(model, folder)
            except OSError as exc:
                print(f"error: {exc}", file=sys.stderr)
                failed += 1
    return 1 if failed else 0


def run_test(args: argparse.Namespace) -> int:
    from lib_lora_trainer.models.detect import ModelError

    from .job_eval import evaluate_subject, subject_for_file, subject_for_job

    try:
        sweeps = parse_sweeps(args.sweep)
        path = Path(args.subject)
        if path.suffix == ".safetensors" or path.is_file():
            subject = subject_for_file(path, args.model, args.trigger, args.dataset)
        else:
            from lib_lora_trainer.jobs.service import JobService

            subject = subject_for_job(JobService(data_dir=args.data_dir).get(args.subject))
        overrides = {"steps": args.steps, "cfg_scale": args.cfg, "sampler": args.sampler}
        if "combine" in sweeps:
            if not args.second_lora:
                raise PlanError("second_lora", "--sweep combine needs --second-lora FILE")
            overrides["second_lora"] = args.second_lora
        from .scorer_weights import downloads_allowed

        result, json_path, md_path = evaluate_subject(subject, sweeps, seeds=args.seeds,
                                                      allow_downloads=args.allow_downloads or downloads_allowed(),
                                                      **overrides)
    except (PlanError, ModelError, KeyError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    v = result.verdict
    print(f"verdict: {v['label']} - {v['reason']}")
    if result.ranking.get("sentence"):
        print(f"recommendation: {result.ranking['sentence']}")
    for label, grid in result.grids.items():
        print(f"grid ({label}): {grid}")
    print(f"preview: {result.preview}\nreport: {md_path}\n        {json_path}")
    return 0

"""`python -m lib_lora_trainer demo-model build|install`: (re)build or install the demo model."""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, fields
from pathlib import Path

from .base_training import BaseTrainingPlan, train_base_model
from .demo_model import ASSETS, MODEL_NAME, SHIPPED_MODEL, install_demo_model, save_demo_model


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo-model", help="build or install the embedded demo model (cartoon128)")
    verbs = p.add_subparsers(dest="verb", required=True)
    b = verbs.add_parser("build", help="train the demo model from nothing (about 85 min on 2 CPU cores; with --checkpoint-dir a stopped build resumes)")
    b.add_argument("--out", type=Path, default=ASSETS, help=f"folder for {MODEL_NAME}.safetensors and its card")
    for f in fields(BaseTrainingPlan):
        b.add_argument(f"--{f.name.replace('_', '-')}", type=type(f.default), default=f.default)
    b.set_defaults(func=run_build)
    s = verbs.add_parser("scorer", help="train the attribute reader used for the demo's scores")
    s.add_argument("--out", type=Path, default=ASSETS)
    s.add_argument("--seed", type=int, default=99)
    s.add_argument("--examples", type=int, default=20000)
    s.add_argument("--steps", type=int, default=2500)
    # The defaults rebuild the shipped reader (scorer.card.json): generated pictures have been
    # through the VAE, so the reader learns from such pictures too.
    s.add_argument("--round-trip-examples", type=int, default=6000,
                   help="examples sent through the demo model's VAE and back (0: drawn pictures only)")
    s.add_argument("--model", type=Path, default=SHIPPED_MODEL, help="the demo model whose VAE makes the round trips")
    s.set_defaults(func=run_scorer)
    i = verbs.add_parser("install", help="copy the shipped model into a models folder with its config files")
    i.add_argument("models_dir", type=Path)
    i.add_argument("--source", type=Path, default=SHIPPED_MODEL, help="a built cartoon128 file (default: the shipped one)")
    i.set_defaults(func=lambda a: print(install_demo_model(a.models_dir, a.source)) or 0)


def run_build(args: argparse.Namespace) -> int:
    plan = BaseTrainingPlan(**{f.name: getattr(args, f.name) for f in fields(BaseTrainingPlan)})
    start = time.perf_counter()
    unet, vae, text_encoder, log = train_base_model(plan, say=lambda m: print(m, flush=True))
    args.out.mkdir(parents=True, exist_ok=True)
    path = save_demo_model(unet, vae, text_encoder, args.out / f"{MODEL_NAME}.safetensors", log.scaling_factor,
                           extra={"lora_trainer.seed": plan.seed})
    card = asdict(log)
    card["seconds"]["total"] = round(time.perf_counter() - start, 1)
    card["file_bytes"] = path.stat().st_size
    if plan.continue_from:
        # The card of the model it continued from: the full recipe is both stages, in order.
        prev = Path(plan.continue_from).with_name(f"{MODEL_NAME}.card.json")
        prev = prev if prev.is_file() else ASSETS / f"{MODEL_NAME}.card.json"
        if prev.is_file():
            card["previous_stage"] = json.loads(prev.read_text(encoding="utf-8"))
    (args.out / f"{MODEL_NAME}.card.json").write_text(json.dumps(card, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB) in {card['seconds']['total']} s")
    return 0


def run_scorer(args: argparse.Namespace) -> int:
    import tempfile

    from .round_trip import load_vae
    from .scorer import save_reader, train_reader

    vae = None
    if args.round_trip_examples:
        with tempfile.TemporaryDirectory() as tmp:
            vae = load_vae(install_demo_model(Path(tmp), args.model))
    model, log = train_reader(seed=args.seed, examples=args.examples, steps=args.steps, vae=vae,
                              round_trip_examples=args.round_trip_examples, say=lambda m: print(m, flush=True))
    log.round_trip_model = f"{args.model.name} ({args.model.stat().st_size} bytes)" if vae is not None else ""
    path = save_reader(model, args.out / "scorer.safetensors", {"seed": log.seed, "steps": log.steps,
                                                                "round_trip_examples": log.round_trip_examples})
    (args.out / "scorer.card.json").write_text(json.dumps(asdict(log), indent=1) + "\n", encoding="utf-8")
    print(f"wrote {path} in {log.seconds} s: accuracy on fresh pictures {log.accuracy}, "
          f"through the VAE and back {log.accuracy_round_trip}")
    return 0

"""The runs the verdict's thresholds come from (README, "The verdict"): the demo's LoRA trained
shorter, as shipped, longer and too hot on the shipped demo model, each tested as `make demo` tests
it. Prints best concept, prompt following kept at weight 1 and the verdict per run.

    .venv/bin/python bench/verdict_calibration.py [--runs 48:5e-3,100:5e-3,120:5e-3,176:5e-3,320:5e-3,176:1e-2]
"""

import argparse
import json
import tempfile
import time
from pathlib import Path

from lib_lora_trainer.demo.cli import evaluate_demo_lora, train_demo_lora
from lib_lora_trainer.demo.demo_model import install_demo_model
from lib_lora_trainer.demo.sample_dataset import write_sample_dataset

p = argparse.ArgumentParser()
# The README's table: under-trained, good (120 = the cpu-demo preset), over-trained, too hot.
p.add_argument("--runs", default="48:5e-3,100:5e-3,120:5e-3,176:5e-3,320:5e-3,176:1e-2",
               help="steps:learning rate, comma-separated")
p.add_argument("--seeds", type=int, default=3)
p.add_argument("--json", type=Path, help="also write the rows here")
args = p.parse_args()

rows = []
with tempfile.TemporaryDirectory() as tmp:
    photos = write_sample_dataset(Path(tmp) / "photos")
    model = install_demo_model(Path(tmp) / "models")
    for i, run in enumerate(args.runs.split(",")):
        steps, lr = run.split(":")
        out = Path(tmp) / f"run{i}"
        t0 = time.perf_counter()
        job = train_demo_lora(out, photos, model, {"max_train_steps": int(steps), "learning_rate": float(lr)})
        assert job.state == "succeeded", (job.error_kind, job.error)
        result, _, _ = evaluate_demo_lora(out, job, Path(job.installed_path), model, args.seeds)
        novel, data = result.summary.get("novel", {}), result.summary.get("dataset", {})
        concept = {w: round((novel[w]["concept"] + data[w]["concept"]) / 2, 3) for w in novel}
        best_w = max(concept, key=concept.get)
        kept = novel[max(novel)]["prompt_following"] / novel[min(novel)]["prompt_following"]
        row = {"steps": int(steps), "lr": float(lr), "concept_by_weight": concept, "best_weight": best_w,
               "concept_novel_w1": round(novel[max(novel)]["concept"], 3),
               "following_kept_w1": round(kept, 3), "verdict": result.verdict["label"],
               "reason": result.verdict["reason"], "seconds": round(time.perf_counter() - t0, 1)}
        rows.append(row)
        print(json.dumps(row), flush=True)

print("\n| run | best concept (weight) | concept on novel prompts at 1 | prompt following kept at 1 | verdict |")
print("|---|---|---|---|---|")
for r in rows:
    print(f"| {r['steps']} steps, lr {r['lr']:g} | {r['concept_by_weight'][r['best_weight']]:.2f} ({r['best_weight']:g}) "
          f"| {r['concept_novel_w1']:.2f} | {r['following_kept_w1']:.2f} | {r['verdict']} |")
if args.json:
    args.json.write_text(json.dumps(rows, indent=1) + "\n")

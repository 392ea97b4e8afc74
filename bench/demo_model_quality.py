"""Prompt following of the shipped demo model, per attribute (see lib_lora_trainer/demo/quality.py).

    .venv/bin/python bench/demo_model_quality.py [--n 48] [--model PATH]
"""

import argparse
import json
import tempfile
import time
from pathlib import Path

from lib_lora_trainer.demo.demo_model import install_demo_model
from lib_lora_trainer.demo.quality import prompt_following

p = argparse.ArgumentParser()
p.add_argument("--n", type=int, default=48)
p.add_argument("--model", type=Path, help="an installed cartoon128 file (default: the shipped one)")
args = p.parse_args()
start = time.perf_counter()
with tempfile.TemporaryDirectory() as tmp:
    model = args.model or install_demo_model(Path(tmp))
    result = prompt_following(model, n=args.n)
print(json.dumps(result, indent=1))
print(f"{args.n} pictures in {time.perf_counter() - start:.1f} s")

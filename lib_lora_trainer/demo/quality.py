"""How well a demo-world model follows prompts: generate one picture per random described person
and let the attribute reader say how often each asked attribute came out (probability, 0..1;
chance is 1/len(values)). Used for the model card and `bench/demo_model_quality.py`."""

from __future__ import annotations

import random
from pathlib import Path

from .scorer import load_reader, read_probabilities
from .world import ATTRIBUTES, describe, random_person


BY_VALUE = ("hair_colour", "background")  # the colours users notice first: reported per asked value


def prompt_following(model_path: Path, n: int = 48, seed: int = 0, steps: int = 20, cfg_scale: float = 5.0,
                     include_held_out: bool = False) -> dict:
    from lib_lora_trainer.generation.pipeline import generate_many, load_model_pipeline

    pipe = load_model_pipeline(model_path)
    pipe.set_progress_bar_config(disable=True)
    rng = random.Random(seed)
    people = [random_person(rng, include_held_out=include_held_out) for _ in range(n)]
    images = [generate_many(pipe, describe(p), [seed * 1000 + i], steps=steps, cfg_scale=cfg_scale)[0]
              for i, p in enumerate(people)]
    probs = read_probabilities(load_reader(), images)
    out = {}
    for name, values in ATTRIBUTES.items():
        asked = [values.index(getattr(p, name)) for p in people]
        out[name] = round(float(sum(probs[name][i, a] for i, a in enumerate(asked)) / n), 4)
    out["mean"] = round(sum(out.values()) / len(ATTRIBUTES), 4)
    out["chance"] = round(sum(1 / len(v) for v in ATTRIBUTES.values()) / len(ATTRIBUTES), 4)
    for name in BY_VALUE:
        values = ATTRIBUTES[name]
        per = {}
        for v in values:
            rows = [i for i, p in enumerate(people) if getattr(p, name) == v]
            if rows:
                per[v] = round(float(sum(probs[name][i, values.index(v)] for i in rows) / len(rows)), 3)
        out[f"{name}_by_value"] = per
    return out

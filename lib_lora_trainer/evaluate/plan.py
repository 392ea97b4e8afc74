"""What an evaluation generates: prompts x weights (x samplers x steps x checkpoints), fixed seeds."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_WEIGHTS = (0.0, 0.25, 0.5, 0.75, 1.0)
# The thesis's four samplers, by their A1111 names.
THESIS_SAMPLERS = ("Euler a", "DPM++ 2M Karras", "DPM++ SDE Karras", "DPM++ 2M SDE Karras")
DEFAULT_STEPS_SWEEP = (5, 10, 20, 30)
SWEEPS = ("weights", "samplers", "steps", "checkpoints", "combine")


class PlanError(ValueError):
    def __init__(self, field_name: str, message: str):
        super().__init__(f"{field_name}: {message}")
        self.field = field_name


def novel_prompts(trigger: str, class_token: str | None) -> list[str]:
    """Prompts the dataset never had: does the LoRA keep following the rest of the prompt?"""
    who = f"{trigger}, {class_token}" if class_token else trigger
    return [f"{who} in a red jacket, blue background", f"{who}, smiling, yellow background",
            f"{who} in a white shirt, green background"]


@dataclass
class EvalPlan:
    prompts: list[str]                      # dataset captions first, then novel prompts
    novel_from: int                         # prompts[novel_from:] are the novel ones
    weights: tuple[float, ...] = DEFAULT_WEIGHTS
    seeds: tuple[int, ...] = (1, 2, 3, 4)   # the grid shows seeds[0]; scores use all
    sampler: str = "Euler a"
    steps: int = 20
    cfg_scale: float = 7.0
    negative: str = ""
    width: int | None = None
    height: int | None = None
    samplers: tuple[str, ...] = ()          # sampler sweep at weight 1 (empty: off)
    steps_sweep: tuple[int, ...] = ()       # steps sweep at weight 1 (empty: off)
    checkpoints: list[Path] = field(default_factory=list)  # intermediate files, swept x weights
    second_lora: Path | None = None         # combination: this LoRA at second_weight on top
    second_weight: float = 0.7
    preview_weight: float | None = None     # None: the LoRA's preferred weight, else 1.0

    def validate(self) -> None:
        if not self.prompts:
            raise PlanError("prompts", "no prompts to generate; give at least one")
        if not self.weights or any(not (0.0 <= w <= 2.0) for w in self.weights):
            raise PlanError("weights", f"{self.weights}: use values between 0 and 2, e.g. 0,0.5,1")
        if not self.seeds:
            raise PlanError("seeds", "need at least one seed")
        if not (1 <= self.steps <= 150):
            raise PlanError("steps", f"{self.steps}: use 1..150")
        if any(not (1 <= s <= 150) for s in self.steps_sweep):
            raise PlanError("steps_sweep", f"{self.steps_sweep}: use 1..150")
        if self.second_lora is not None and not Path(self.second_lora).is_file():
            raise PlanError("second_lora", f"{self.second_lora} does not exist; pick a file from the Lora folder")


def parse_sweeps(text: str) -> set[str]:
    """'weights,samplers' -> {'weights', 'samplers'}; unknown names are an error naming the choices."""
    chosen = {s.strip() for s in text.split(",") if s.strip()}
    unknown = chosen - set(SWEEPS)
    if unknown:
        raise PlanError("sweep", f"unknown {', '.join(sorted(unknown))}; choose from {', '.join(SWEEPS)}")
    return chosen | {"weights"}

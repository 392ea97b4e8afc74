"""Run an evaluation: generate every cell of the plan, score it, draw the grids, pick a preview,
write the report. The renderer and scorers are injected, so the same code serves A1111,
the standalone app, the CLI and the demo."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from lib_lora_trainer import atomic

from .dataset_pairs import caption_pairs, load_images, spread
from .grid import make_grid
from .plan import EvalPlan, novel_prompts
from .ranking import cells_from_scores, mean_scores, rank
from .renderer import Renderer
from .scoring import EvalContext
from .verdict import Verdict, decide


def _same_pictures(a: list, b: list) -> bool:
    return len(a) == len(b) and all(x.tobytes() == y.tobytes() for x, y in zip(a, b))


@dataclass
class EvalTarget:
    lora: Path
    trigger: str
    dataset_dir: Path | None = None          # prepared img/ folder: captions and pictures
    class_token: str | None = None
    holdout_dir: Path | None = None          # pictures kept out of training, for the memorisation check
    preferred_weight: float | None = None

    @property
    def name(self) -> str:
        return Path(self.lora).stem


@dataclass
class EvalResult:
    target: dict
    plan: dict
    scores: list[dict] = field(default_factory=list)        # one row per cell
    summary: dict = field(default_factory=dict)              # group -> weight -> metric -> mean
    verdict: dict = field(default_factory=dict)
    ranking: dict = field(default_factory=dict)              # ranking.Ranking: checkpoint x weight, best first
    skipped_scorers: dict = field(default_factory=dict)     # name -> reason
    identity: dict = field(default_factory=dict)
    notes: dict = field(default_factory=dict)                # scorer -> model used, faces found...
    grids: dict = field(default_factory=dict)                # sweep -> png path
    preview: str | None = None
    seconds: float = 0.0
    pictures: int = 0                                        # rendered in all


def default_plan(target: EvalTarget, dataset_prompts: int = 3, **overrides) -> EvalPlan:
    captions = []
    if target.dataset_dir is not None:
        captions = [c for _, c in spread([p for p in caption_pairs(target.dataset_dir) if p[1]], dataset_prompts)]
    prompts = captions + novel_prompts(target.trigger, target.class_token)
    return EvalPlan(prompts=prompts, novel_from=len(captions), **overrides)


class Evaluation:
    def __init__(self, target: EvalTarget, plan: EvalPlan, out_dir: Path, renderer: Renderer, scorers: list,
                 say=print, progress=None):
        """`progress(done, total, cell)` is called after every render call: pictures done / in all."""
        plan.validate()
        self.t, self.plan, self.out, self.renderer, self.say = target, plan, Path(out_dir), renderer, say
        self.progress = progress
        self.done = 0
        self.total = self.planned_pictures()
        self.result = EvalResult(target={k: str(v) if isinstance(v, Path) else v for k, v in vars(target).items()},
                                 plan={k: [str(x) for x in v] if isinstance(v, list) and k == "checkpoints"
                                       else (str(v) if isinstance(v, Path) else v) for k, v in vars(plan).items()})
        pairs = caption_pairs(target.dataset_dir) if target.dataset_dir else []
        self.by_caption = {c: p for p, c in pairs}
        holdout = [p for p, _ in caption_pairs(target.holdout_dir)] if target.holdout_dir else []
        self.ctx = EvalContext(trigger=target.trigger, dataset_images=load_images([p for p, _ in pairs]),
                               holdout_images=load_images(holdout))
        self._grid_rows: dict[str, tuple[list, list[str] | None]] = {}
        self.scorers = []
        for s in scorers:
            reason = s.unavailable_reason(self.ctx)
            if reason:
                self.result.skipped_scorers[s.name] = reason
            else:
                self.scorers.append(s)
        self.result.identity = dict(self.ctx.identity)
        self.result.notes = dict(self.ctx.notes)

    def _weight_zero_reused(self) -> int:
        """Pictures the base stands in for: weight 0 is rendered for the first prompt only, for the
        bit-identity check (see _weight_sweep)."""
        p = self.plan
        return (len(p.prompts) - 1) * len(p.seeds) if 0 in p.weights else 0

    def planned_pictures(self) -> int:
        """How many pictures run() renders in all (what "testing: n/N pictures" counts)."""
        p, seeds = self.plan, len(self.plan.seeds)
        axis_prompts = len(p.prompts[p.novel_from:][:2] or p.prompts[:1])
        total = len(p.prompts) * (1 + len(p.weights)) * seeds                   # base + every weight
        total -= self._weight_zero_reused()
        total += axis_prompts * (len(p.samplers) + len(p.steps_sweep)) * seeds
        if p.checkpoints:
            ckpt_prompts = len(self._checkpoint_prompts())
            total += ckpt_prompts * (1 + (len(p.checkpoints) + 1) * sum(1 for w in p.weights if w != 0)) * seeds
        if p.second_lora:
            total += axis_prompts * 3 * seeds
        return total + 1                                                         # the preview

    def _render(self, prompt, loras, sampler=None, steps=None, seeds=None):
        """All seeds of one cell in one renderer call (the renderer batches them)."""
        p = self.plan
        seeds = tuple(p.seeds if seeds is None else seeds)
        images = self.renderer.images(prompt, seeds, loras, sampler=sampler or p.sampler, steps=steps or p.steps,
                                      cfg_scale=p.cfg_scale, negative=p.negative, width=p.width, height=p.height)
        self._rendered(len(seeds), prompt[:60], loras)
        return images

    def _render_many(self, prompts, loras) -> list[list]:
        """Every prompt of one weight in as few renderer calls as it allows (images_many batches them)."""
        many = getattr(self.renderer, "images_many", None)
        if many is None or len(prompts) < 2:
            return [self._render(prompt, loras) for prompt in prompts]
        p = self.plan
        out = many(list(prompts), tuple(p.seeds), loras, sampler=p.sampler, steps=p.steps, cfg_scale=p.cfg_scale,
                   negative=p.negative, width=p.width, height=p.height)
        self._rendered(len(prompts) * len(p.seeds), f"{len(prompts)} prompts", loras)
        return out

    def _rendered(self, pictures: int, what: str, loras) -> None:
        """Count a renderer call's pictures and say so: 'what (name:weight, ...)'."""
        self.done += pictures
        if self.progress is not None:
            weights = ", ".join(f"{Path(path).stem}:{float(w):g}" for path, w in loras) or "no LoRA"
            self.progress(self.done, self.total, f"{what} ({weights})")

    def _score(self, images, prompt, base) -> dict[str, float]:
        out: dict[str, float] = {}
        for s in self.scorers:
            out.update(s.score(images, prompt, base, self.ctx))
        return out

    def run(self) -> EvalResult:
        start = time.perf_counter()
        self.out.mkdir(parents=True, exist_ok=True)
        if self.progress is not None:
            self.progress(0, self.total, "loading the model")
        grid_rows = self._weight_sweep(self.t.lora, "weights")
        self._write_grid("weights", grid_rows)
        self._summarise()
        if self.plan.samplers:
            self._axis_sweep("samplers", [(s, {"sampler": s}) for s in self.plan.samplers])
        if self.plan.steps_sweep:
            self._axis_sweep("steps", [(f"{n} steps", {"steps": n}) for n in self.plan.steps_sweep])
        if self.plan.checkpoints:
            self._checkpoint_sweep()
        if self.plan.second_lora:
            self._combination()
        self._rank()
        self.result.preview = str(self._write_preview())
        self.result.seconds = round(time.perf_counter() - start, 1)
        self.result.pictures = self.done
        return self.result

    # --- sweeps ---------------------------------------------------------------------

    def _weight_sweep(self, lora: Path, label: str):
        prompts, weights = self.plan.prompts, self.plan.weights
        # The model alone, no LoRA loaded at all, for every prompt first: the LoRA is then loaded once.
        # The first prompt gets a call of its own, as its weight-0 check below does: identical batches.
        bases = self._render_many(prompts[:1], []) + self._render_many(prompts[1:], [])
        rows_by_cell: dict[tuple[int, float], dict] = {}
        first_cells: dict[tuple[int, float], Image.Image] = {}
        for w in weights:
            if w == 0:
                # A LoRA at weight 0 must leave the model's output untouched, bit for bit. That is a
                # property of the LoRA loading, not of the prompt: checked on the first prompt, the
                # base pictures then stand for weight 0 (one batch of five prompts less in the demo's test).
                first = self._render(prompts[0], [(lora, 0.0)])
                proven = _same_pictures(first, bases[0])
                checks = [{"equals_base": proven}]
                if proven:
                    images_by_prompt = [first, *bases[1:]]
                    checks += [{"reused_base": True}] * (len(prompts) - 1)
                else:  # then every prompt's weight 0 is rendered and shown
                    self.total += self._weight_zero_reused()
                    rest = self._render_many(prompts[1:], [(lora, 0.0)])
                    images_by_prompt = [first, *rest]
                    checks += [{"equals_base": _same_pictures(a, b)} for a, b in zip(rest, bases[1:])]
            else:
                images_by_prompt = self._render_many(prompts, [(lora, w)])
                checks = [{}] * len(prompts)
            for i, (prompt, images, check) in enumerate(zip(prompts, images_by_prompt, checks)):
                group = "novel" if i >= self.plan.novel_from else "dataset"
                scores = self._score(images, prompt, bases[i])
                rows_by_cell[i, w] = {"sweep": label, "prompt": prompt, "group": group, "weight": w, **scores, **check}
                first_cells[i, w] = images[0]
                self.say(f"  {label}: prompt {i + 1}/{len(prompts)} weight {w}: "
                         + ", ".join(f"{k} {v}" for k, v in scores.items() if k in ("concept", "prompt_following",
                                                                                   "change_vs_base")))
        rows = []
        for i, prompt in enumerate(prompts):  # report rows and grid rows prompt by prompt
            self.result.scores.extend(rows_by_cell[i, w] for w in weights)
            data_img = self.by_caption.get(prompt)
            rows.append((prompt, [Image.open(data_img).convert("RGB") if data_img else None,
                                  *(first_cells[i, w] for w in weights)]))
        return rows

    def _axis_sweep(self, label: str, columns: list[tuple[str, dict]]):
        weight = self._preview_weight()
        rows = []
        for prompt in self.plan.prompts[self.plan.novel_from:][:2] or self.plan.prompts[:1]:
            cells = []
            for col, kwargs in columns:
                images = self._render(prompt, [(self.t.lora, weight)], **kwargs)
                self.result.scores.append({"sweep": label, "prompt": prompt, "setting": col, "weight": weight,
                                           **self._score(images, prompt, [])})
                cells.append(images[0])
            rows.append((prompt, cells))
        self._write_grid(label, rows, [c for c, _ in columns])

    def _checkpoint_prompts(self) -> list[str]:
        """Every saved file is scored on all the novel prompts (one prompt's 4 seeds are too few to
        rank files by: measured on the demo model, 0.21 -> 0.33 on one prompt where all six said
        0.13 -> 0.46); the grid shows the first."""
        return self.plan.prompts[self.plan.novel_from:] or self.plan.prompts[:1]

    def _checkpoint_sweep(self):
        rows = []
        for n, prompt in enumerate(self._checkpoint_prompts()):
            base = self._render(prompt, [])
            for ckpt in [*self.plan.checkpoints, self.t.lora]:
                cells = []
                for w in self.plan.weights:
                    images = base if w == 0 else self._render(prompt, [(Path(ckpt), w)])
                    self.result.scores.append({"sweep": "checkpoints", "prompt": prompt, "checkpoint": Path(ckpt).name,
                                               "weight": w, **self._score(images, prompt, base)})
                    cells.append(images[0])
                if n == 0:
                    rows.append((Path(ckpt).name, cells))
        self._write_grid("checkpoints", rows, [f"w={w}" for w in self.plan.weights])

    def _combination(self):
        weight, other, ow = self._preview_weight(), Path(self.plan.second_lora), self.plan.second_weight
        columns = [("this LoRA", [(self.t.lora, weight)]), (other.stem, [(other, ow)]),
                   ("both", [(self.t.lora, weight), (other, ow)])]
        rows = []
        for prompt in self.plan.prompts[self.plan.novel_from:][:2] or self.plan.prompts[:1]:
            cells = []
            for col, loras in columns:
                images = self._render(prompt, loras)
                self.result.scores.append({"sweep": "combine", "prompt": prompt, "setting": col,
                                           **self._score(images, prompt, [])})
                cells.append(images[0])
            rows.append((prompt, cells))
        self._write_grid("combine", rows, [c for c, _ in columns])

    # --- outputs ----------------------------------------------------------------------

    def _write_grid(self, label: str, rows, columns: list[str] | None = None,
                    marked: frozenset[tuple[int, int]] = frozenset()):
        self._grid_rows[label] = (rows, columns)
        if columns is None:
            columns = ["dataset"] + [f"w={w}" for w in self.plan.weights]
        img = make_grid([r for r, _ in rows], columns, [c for _, c in rows], marked=marked,
                        title=f"{self.t.name}: {label} (seed {self.plan.seeds[0]}, {self.plan.sampler}, "
                              f"{self.plan.steps} steps, cfg {self.plan.cfg_scale})")
        path = self.out / f"grid_{label}.png"
        with atomic.atomic_path(path) as tmp:
            img.save(tmp, format="PNG")
        self.result.grids[label] = str(path)

    def _summarise(self):
        for group in ("dataset", "novel"):
            per_w = {}
            for w in self.plan.weights:
                rows = [r for r in self.result.scores if r["sweep"] == "weights" and r["group"] == group and r["weight"] == w]
                if rows:
                    per_w[w] = mean_scores(rows)
            if per_w:
                self.result.summary[group] = per_w
        verdict: Verdict = decide(self.result.summary.get("novel", {}), self.result.summary.get("dataset", {}))
        self.result.verdict = vars(verdict)

    def _rank(self):
        """Rank checkpoint x weight (ranking.py) and frame the recommended cell in its grid."""
        final = Path(self.t.lora).name
        ranking = rank(*cells_from_scores(self.result.scores, final))
        self.result.ranking = vars(ranking)
        best = ranking.best
        if not best or not ranking.confident:   # no frame on a cell that is no recommendation
            return
        column = self.plan.weights.index(best["weight"]) if best["weight"] in self.plan.weights else None
        if "checkpoints" in self._grid_rows and column is not None:
            rows, columns = self._grid_rows["checkpoints"]
            names = [r for r, _ in rows]
            if best["checkpoint"] in names:
                self._write_grid("checkpoints", rows, columns, frozenset({(names.index(best["checkpoint"]), column)}))
        if best["checkpoint"] == final and column is not None and "weights" in self._grid_rows:
            rows, columns = self._grid_rows["weights"]
            self._write_grid("weights", rows, columns, frozenset((r, column + 1) for r in range(len(rows))))

    def _preview_weight(self) -> float:
        if self.plan.preview_weight is not None:
            return self.plan.preview_weight
        best = self.result.ranking.get("best")
        if best and self.result.ranking.get("confident") and best["checkpoint"] == Path(self.t.lora).name:
            return float(best["weight"])
        if self.result.verdict.get("recommended_weight") is not None:
            return float(self.result.verdict["recommended_weight"])
        return self.t.preferred_weight or 1.0

    def _write_preview(self) -> Path:
        """`<lora stem>.preview.png` beside the LoRA: A1111's Lora tab shows it as the card image."""
        prompt = self.plan.prompts[self.plan.novel_from] if self.plan.novel_from < len(self.plan.prompts) else self.plan.prompts[0]
        image = self._render(prompt, [(self.t.lora, self._preview_weight())], seeds=self.plan.seeds[:1])[0]
        path = Path(self.t.lora).with_suffix(".preview.png")
        with atomic.atomic_path(path) as tmp:
            image.resize((max(256, image.width), max(256, image.height)), Image.Resampling.NEAREST).save(tmp, format="PNG")
        return path

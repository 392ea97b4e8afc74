"""A short verdict from the weight sweep: under-trained, good or over-trained, and a weight to use.

With a concept score (demo world): the lift of `concept` from weight 0 to 1 says whether the LoRA
learned the character; `prompt_following` on the novel prompts says whether it still obeys the
rest of the prompt. Without one, image statistics stand in: `change_vs_base` (did it learn
anything) and `seed_diversity` (did every seed collapse into one picture). Thresholds are in
the README with the measurements they came from.
"""

from __future__ import annotations

from dataclasses import dataclass

# Measured on the demo model cartoon128 (README, "The verdict"): its LoRA at 48 / 200 / 320 steps and
# at lr 1e-2 reached concept 0.49 / 0.56 / 0.29 / 0.32 at best, keeping 1.05 / 0.96 / 0.71 / 0.48 of
# the base model's prompt following.
MIN_CONCEPT_LIFT = 0.15        # concept@1 - concept@0 below this: the trigger barely does anything
MIN_CONCEPT = 0.7              # best concept below this: the character is only partly learned
MIN_FOLLOWING_KEPT = 0.8       # following@1 / following@0 below this: the LoRA overrides prompts
MIN_FOLLOWING = 0.35
MIN_CHANGE = 0.01              # mean |pixel difference| to the base below this: nothing learned
MIN_DIVERSITY_KEPT = 0.35      # seed diversity@1 / @0 below this: collapse


@dataclass
class Verdict:
    label: str                 # under-trained | good | over-trained
    reason: str
    recommended_weight: float
    basis: str                 # concept | image statistics


def _pick(novel: dict, dataset: dict, w: float, key: str, mean: bool = False) -> float | None:
    """The novel prompts' value (the harder test), else the dataset prompts'; or their mean."""
    values = [g[w][key] for g in (novel, dataset) if key in g.get(w, {})]
    if not values:
        return None
    return sum(values) / len(values) if mean else values[0]


def decide(novel: dict[float, dict[str, float]], dataset: dict[float, dict[str, float]]) -> Verdict:
    """`novel` / `dataset`: weight -> mean scores over that prompt group."""
    weights = sorted(set(novel) | set(dataset))
    if not weights:
        return Verdict("unknown", "no weights were generated", 1.0, "none")
    lo, hi = weights[0], weights[-1]
    concept = {w: _pick(novel, dataset, w, "concept", mean=True) for w in weights}
    following = {w: _pick(novel, dataset, w, "prompt_following") for w in weights}
    if all(v is not None for v in concept.values()):
        lift = concept[hi] - concept[lo]
        f_lo, f_hi = following[lo], following[hi]
        best = max(concept.values())
        good_w = [w for w in weights if concept[w] >= concept[lo] + 0.9 * (best - concept[lo])]
        if f_lo is not None:
            keeps = [w for w in good_w if (following[w] or 0) >= MIN_FOLLOWING_KEPT * f_lo]
            good_w = keeps or good_w
        rec = good_w[0] if good_w else hi
        over = f_lo is not None and f_hi is not None and (f_hi < MIN_FOLLOWING_KEPT * f_lo or f_hi < MIN_FOLLOWING)
        if over:
            # First: an over-trained LoRA can also lose the concept it drew at a lower weight (measured
            # on the demo model at lr 1e-2: concept 0.42 at 0.5, 0.32 at 1, prompt following 0.54 -> 0.26).
            # Recommend only a weight that keeps the prompts (never the weight that loses them).
            keeping = [w for w in weights if w > lo and (following[w] or 0) >= MIN_FOLLOWING_KEPT * f_lo]
            if keeping:
                rec = rec if rec in keeping else keeping[-1]
                advice = f"use weight {rec} or train fewer steps"
            else:
                rec = next((w for w in weights if w > lo), hi)
                advice = (f"no weight keeps the prompts (weight {rec} loses the least): train fewer steps or with "
                          "a lower learning rate")
            return Verdict("over-trained", f"at weight {hi} prompt following drops to {f_hi:.2f} (from {f_lo:.2f}): "
                           f"{advice}", rec, "concept")
        if lift < MIN_CONCEPT_LIFT:
            return Verdict("under-trained", f"concept rises only {lift:+.2f} from weight {lo} to {hi} "
                           f"(needs {MIN_CONCEPT_LIFT:+.2f}): train longer or with a higher learning rate", hi, "concept")
        if best < MIN_CONCEPT:
            # Rising but not there: e.g. the hair colour learned and the hair style not (the old demo
            # model's LoRA: 0.13 -> 0.46, which the lift rule alone called good).
            return Verdict("under-trained", f"the character is only partly learned: concept {concept[lo]:.2f} -> "
                           f"{best:.2f} at best (needs {MIN_CONCEPT:.2f}): save checkpoints and compare them, or "
                           "train longer", hi, "concept")
        return Verdict("good", f"concept {concept[lo]:.2f} -> {concept[hi]:.2f} with prompt following "
                       f"{'n/a' if f_hi is None else f'{f_hi:.2f}'} at weight {hi}", rec, "concept")
    change = _pick(novel, dataset, hi, "change_vs_base") or 0.0
    d_lo = _pick(novel, dataset, lo, "seed_diversity")
    d_hi = _pick(novel, dataset, hi, "seed_diversity")
    if change < MIN_CHANGE:
        return Verdict("under-trained", f"weight {hi} changes the picture by only {change:.3f} (mean |pixel| "
                       f"difference, needs {MIN_CHANGE}): train longer", hi, "image statistics")
    if d_lo and d_hi is not None and d_hi < MIN_DIVERSITY_KEPT * d_lo:
        return Verdict("over-trained", f"seeds collapse at weight {hi}: diversity {d_lo:.3f} -> {d_hi:.3f}; "
                       "use a lower weight or train fewer steps", weights[len(weights) // 2], "image statistics")
    return Verdict("good", f"weight {hi} changes the picture by {change:.3f} and keeps seed diversity",
                   hi, "image statistics")

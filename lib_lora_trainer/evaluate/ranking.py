"""Which checkpoint and which weight to use: every (checkpoint, weight) cell of a test ranked by
the scores that apply, the best one named with the reason in one sentence.

The rule (README, "Best checkpoint and weight"):
1. Fidelity is the first score every cell has, in this order: face identity to the held-out
   faces, face identity to the dataset faces (each times the share of pictures with a face),
   the demo world's concept, DINO, CLIP-I, colour similarity to the held-out pictures, to the
   dataset. Held-out first: looking like pictures it never saw is learning, not copying.
2. A cell is usable when it keeps the prompt: prompt following (CLIP-T when there is none) at
   least KEEP_FOLLOWING of the model's own (weight 0), and seed diversity at least
   KEEP_DIVERSITY of the model's own (below that the seeds collapse into one picture).
3. The best usable cell wins; cells within NEAR of it count as tied, and among those the one
   that follows the prompt best wins, then the lower weight, then the earlier checkpoint (both
   leave more room for the rest of the prompt and for other LoRAs).
4. When no cell is usable, the one with the best following wins and the sentence says so.
5. The winner must beat the model alone (weight 0) by MIN_LIFT in fidelity, else nothing was
   learned clearly enough to choose by: the table stays, the sentence says "train longer", and no
   preferred weight is written (`confident` False).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from .verdict import MIN_CONCEPT_LIFT as MIN_LIFT  # the verdict's "under-trained" line, so the two agree

KEEP_FOLLOWING = 0.8
KEEP_DIVERSITY = 0.35
NEAR = 0.02
# (score, what the sentence calls it); face scores are weighted by the share of faces found.
FIDELITY = (("face_identity_holdout", "identity to the held-out faces"), ("face_identity", "identity to the dataset faces"),
            ("concept", "concept"), ("dino", "DINO similarity to the dataset"), ("clip_i", "CLIP-I similarity to the dataset"),
            ("holdout_colour_similarity", "colour similarity to the held-out pictures"),
            ("dataset_colour_similarity", "colour similarity to the dataset"))
FOLLOWING = ("prompt_following", "clip_t")


@dataclass
class Cell:
    checkpoint: str
    order: int                      # position of the checkpoint in training order (the last file is the final LoRA)
    weight: float
    scores: dict[str, float]
    fidelity: float | None = None
    following: float | None = None
    usable: bool = True
    why_not: str = ""


@dataclass
class Ranking:
    metric: str = ""                # the fidelity score used, e.g. "concept"
    cells: list[dict] = field(default_factory=list)   # best first
    best: dict | None = None
    sentence: str = ""
    confident: bool = False         # the best cell clearly beats the model alone (rule 5)


def _fidelity(scores: dict[str, float], key: str) -> float | None:
    value = scores.get(key)
    if value is None:
        return None
    if key.startswith("face_identity"):
        return value * scores.get("face_found", 1.0)
    return value


def _metric(cells: list[Cell]) -> tuple[str, str] | None:
    for key, words in FIDELITY:
        if all(_fidelity(c.scores, key) is not None for c in cells):
            return key, words
    return None


def _base_value(base: dict[str, float], keys) -> tuple[str, float] | None:
    for key in keys:
        if key in base:
            return key, base[key]
    return None


def rank(cells: list[Cell], base: dict[str, float]) -> Ranking:
    """`cells`: the LoRA at weights > 0 (any checkpoints); `base`: the same prompts and seeds at
    weight 0 (the model alone), averaged."""
    cells = [c for c in cells if c.weight > 0]
    if not cells:
        return Ranking(sentence="nothing to rank: no picture was made with the LoRA at a weight above 0")
    found = _metric(cells)
    if found is None:
        return Ranking(sentence="nothing to rank: the cells share no fidelity score")
    key, words = found
    follow = _base_value(base, FOLLOWING)
    for c in cells:
        c.fidelity = round(_fidelity(c.scores, key), 4)
        reasons = []
        if follow and follow[0] in c.scores:
            c.following = c.scores[follow[0]]
            if c.following < KEEP_FOLLOWING * follow[1]:
                reasons.append(f"prompt following {c.following:.2f} < {KEEP_FOLLOWING:g} x {follow[1]:.2f}")
        diversity = base.get("seed_diversity")
        if diversity and "seed_diversity" in c.scores and c.scores["seed_diversity"] < KEEP_DIVERSITY * diversity:
            reasons.append(f"seeds collapse ({c.scores['seed_diversity']:.3f} < {KEEP_DIVERSITY:g} x {diversity:.3f})")
        c.usable, c.why_not = not reasons, "; ".join(reasons)

    one_file = len({c.checkpoint for c in cells}) == 1

    def what(c: Cell) -> str:
        return f"weight {c.weight:g}" if one_file else f"{c.checkpoint} at weight {c.weight:g}"

    def tie_order(c: Cell):
        return (-(c.following if c.following is not None else 0.0), c.weight, c.order)

    usable = [c for c in cells if c.usable]
    if usable:
        top = max(c.fidelity for c in usable)
        near = sorted((c for c in usable if c.fidelity >= top - NEAR), key=tie_order)
        best = near[0]
        rest = sorted((c for c in cells if c is not best), key=lambda c: (not c.usable, -c.fidelity, *tie_order(c)))
        sentence = (f"Use {what(best)}: the highest {words} ({best.fidelity:.2f})"
                    + (f" among {len(usable)} of {len(cells)} cells that keep prompt following and seed diversity"
                       if len(usable) < len(cells) else f" of all {len(cells)} cells")
                    + (f"; of the {len(near)} within {NEAR:g} of the top it follows the prompt best"
                       if len(near) > 1 else "") + ".")
    else:
        best = sorted(cells, key=lambda c: (*tie_order(c), -c.fidelity))[0]
        rest = sorted((c for c in cells if c is not best), key=lambda c: (-c.fidelity, *tie_order(c)))
        sentence = (f"No cell keeps the prompt ({best.why_not}); {what(best)} follows it best "
                    f"({words} {best.fidelity:.2f}): train fewer steps or with a lower learning rate.")
    ordered = [best, *rest]
    base_fidelity = _fidelity(base, key)
    confident = base_fidelity is None or best.fidelity - base_fidelity >= MIN_LIFT
    if not confident:
        lift = round(best.fidelity - base_fidelity, 2) + 0.0    # + 0.0: never "-0.00"
        sentence = (f"No clear winner: the best cell ({what(best)}, {words} {best.fidelity:.2f}) is only "
                    f"{lift:+.2f} over the model alone ({base_fidelity:.2f}; needs "
                    f"{MIN_LIFT:+.2f}): train longer or with a higher learning rate.")
    return Ranking(metric=key, cells=[asdict(c) for c in ordered], best=asdict(best), sentence=sentence,
                   confident=confident)


def mean_scores(rows: list[dict]) -> dict[str, float]:
    """Each numeric score's mean over the rows that have it (the weight and flags left out)."""
    keys = {k for r in rows for k, v in r.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    keys.discard("weight")
    return {k: round(sum(r[k] for r in rows if k in r) / sum(1 for r in rows if k in r), 4) for k in sorted(keys)}


def cells_from_scores(rows: list[dict], final_name: str) -> tuple[list[Cell], dict[str, float]]:
    """The test's score rows -> (cells, base). The checkpoint sweep when it ran (every saved file
    on the same prompt and seeds), else the weight sweep of the final LoRA over all its prompts."""
    sweep = [r for r in rows if r.get("sweep") == "checkpoints"]
    if not sweep:
        sweep = [dict(r, checkpoint=final_name) for r in rows if r.get("sweep") == "weights"]
    order = list(dict.fromkeys(r["checkpoint"] for r in sweep))
    base = mean_scores([r for r in sweep if r["weight"] == 0 and r["checkpoint"] == order[-1]]) if order else {}
    groups: dict[tuple[str, float], list[dict]] = {}
    for r in sweep:
        if r["weight"] > 0:
            groups.setdefault((r["checkpoint"], float(r["weight"])), []).append(r)
    cells = [Cell(name, order.index(name), w, mean_scores(group)) for (name, w), group in groups.items()]
    return cells, base

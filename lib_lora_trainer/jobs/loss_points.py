"""The points of the job's loss chart kept in ProgressState: the training loss (one per step) and
the held-out pictures' validation loss (one per validation), both redone from where a resumed
attempt's bar went back."""

from __future__ import annotations

import bisect
import math

from .tqdm_lines import TqdmUpdate, _loss_value


def append_point(history: list[tuple[int, float]], point: tuple[int, float]) -> None:
    if history and history[-1][0] >= point[0]:  # the bar went back (a resumed attempt): redo from there
        del history[bisect.bisect_left([p[0] for p in history], point[0]):]
    history.append(point)


def add_validation_point(history: list[tuple[int, float]], bar: TqdmUpdate, step: int) -> None:
    """A finished validation bar: its val_avg_loss (val_epoch_avg_loss after an epoch) at the training
    step it followed; an epoch's validation after a step's replaces it (both measure the same weights)."""
    loss = _loss_value(bar.postfix.get("val_avg_loss", bar.postfix.get("val_epoch_avg_loss")))
    if bar.total and bar.n == bar.total and loss is not None and math.isfinite(loss):
        append_point(history, (step, loss))

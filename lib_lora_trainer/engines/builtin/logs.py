"""The console lines sd-scripts prints, so one parser reads both engines (see the fixtures)."""

from __future__ import annotations

import sys

from tqdm import tqdm


def say(*parts) -> None:
    print(*parts, flush=True)


def training_summary(num_train_images: int, num_reg_images: int, batches_per_epoch: int, epochs: int,
                     batch_size: int, grad_accum: int, total_steps: int, num_validation_images: int = 0) -> None:
    say("running training / 学習開始")
    say(f"  num train images * repeats / 学習画像の数×繰り返し回数: {num_train_images}")
    say(f"  num validation images * repeats / 学習画像の数×繰り返し回数: {num_validation_images}")
    say(f"  num reg images / 正則化画像の数: {num_reg_images}")
    say(f"  num batches per epoch / 1epochのバッチ数: {batches_per_epoch}")
    say(f"  num epochs / epoch数: {epochs}")
    say(f"  batch size per device / バッチサイズ: {batch_size}")
    say(f"  gradient accumulation steps / 勾配を合計するステップ数 = {grad_accum}")
    say(f"  total optimization steps / 学習ステップ数: {total_steps}")


def epoch_line(epoch: int, epochs: int) -> None:
    say(f"\nepoch {epoch}/{epochs}")


def saving_line(path) -> None:
    say(f"\nsaving checkpoint: {path}")


def progress_bar(total: int, initial: int = 0, disable: bool = False) -> tqdm:
    # Same call shape as sd-scripts: desc "steps", smoothing 0, on stderr.
    return tqdm(total=total, initial=initial, smoothing=0, desc="steps", disable=disable, file=sys.stderr)


class LossRecorder:
    """sd-scripts' avr_loss: the mean of the current epoch's losses, replacing the previous
    epoch's value at the same position once past the first epoch (a moving window)."""

    def __init__(self) -> None:
        self.losses: list[float] = []
        self.total = 0.0

    def add(self, epoch: int, step: int, loss: float) -> None:
        if epoch == 0 or step >= len(self.losses):
            self.losses.append(loss)
        else:
            self.total -= self.losses[step]
            self.losses[step] = loss
        self.total += loss

    @property
    def average(self) -> float:
        return self.total / max(1, len(self.losses))

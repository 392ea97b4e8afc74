"""Training items and batches, built from the DatasetSpecs the way sd-scripts' DreamBoothDataset does.

- Images per subset: kohya extensions, not recursive, sorted; caption = first line of the caption
  file, else the class tokens; each image counts num_repeats times.
- Regularisation images are cycled until they match the dataset's train images (sd-scripts'
  rule: walk the reg images in order, each first with its own repeats, then +1 repeat per image
  per further round, and stop as soon as the count reaches the train count; so surplus reg images
  beyond that point are not used at all, and the first round may overshoot by < num_repeats).
- Every image goes to one bucket; a batch holds items of one bucket of one dataset only.
- Epoch order: from (seed, epoch) only. Per-fetch randomness (flip, caption dropout/shuffle): from
  (seed, epoch, batch index) only, so a batch is the same whichever rank or thread loads it.
- Validation (validation_split > 0): each train subset's images are shuffled with validation_seed
  and split the way sd-scripts' split_train_val does (train: the first ceil(n x (1 - split)),
  validation: the last round(n x split); reg images are never validation images). Validation
  batches keep one fixed order, no flip and no caption augmentation, so every validation run sees
  the same pictures with the same captions. A dataset with validation_split = 1 trains nothing.
- Data parallel: the epoch's batch list is padded by wrapping around to a multiple of world_size
  (as accelerate's even_batches does, which is what the step arithmetic ceil(batches / processes)
  assumes), then rank r takes every world_size-th batch from r. Padding batches repeat earlier
  batches of the same epoch and are marked `padding=True`.
"""

from __future__ import annotations

import math
import random
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

import numpy as np
import torch
from PIL import Image

from lib_lora_trainer.config.steps import batches_per_epoch

from .buckets import BucketChoice, BucketSet, crop_offsets, load_bucket_image, to_tensor
from .captions import count_tags, process_caption, read_caption
from .data_metadata import DataMetadata
from .dataset_config import (DatasetConfigError, DatasetSpec, SubsetSpec, list_images,
                             load_dataset_blueprint)
from .latent_cache import CachedLatents, CacheJob, CacheReport, Encode, build_cache


@dataclass
class ImageItem:
    path: Path
    caption: str
    size: tuple[int, int]          # original (width, height)
    subset: SubsetSpec
    dataset_index: int
    repeats: int                   # times per epoch (reg images: after cycling)
    choice: BucketChoice | None = None


@dataclass(frozen=True)
class BatchPlan:
    index: int                     # position in the epoch's (unpadded) batch list
    dataset_index: int
    bucket: tuple[int, int]
    items: tuple[int, ...]         # indices into TrainingData.items
    padding: bool = False


@dataclass
class Batch:
    images: torch.Tensor | None    # Bx3xHxW float32 in [-1, 1]; None once latents are cached
    latents: torch.Tensor | None   # BxCxhxw from the cache; None before
    captions: list[str]
    is_reg: torch.Tensor           # bool, B
    loss_weights: torch.Tensor     # float32, B: prior_loss_weight for reg images, else 1
    original_sizes: list[tuple[int, int]]   # (height, width) of the image file
    crop_top_lefts: list[tuple[int, int]]   # (top, left) of the crop in the scaled image (mirrored if flipped)
    target_sizes: list[tuple[int, int]]     # (height, width) of the bucket
    flipped: list[bool]
    paths: list[Path]
    index: int
    padding: bool = False


def _rng(*parts: int) -> np.random.Generator:
    return np.random.default_rng([p % (1 << 63) for p in parts])


class TrainingData(DataMetadata):
    def __init__(self, specs: list[DatasetSpec], seed: int = 0, warnings: list[str] | None = None):
        self.specs = list(specs)
        self.seed = int(seed)
        self.warnings: list[str] = list(warnings if warnings is not None else getattr(specs, "warnings", []))
        self.items: list[ImageItem] = []
        self.buckets: list[dict[tuple[int, int], list[int]]] = []  # per dataset, sorted by reso
        self._tag_frequency: list[dict[str, dict[str, int]]] = []
        # per dataset: (subset, caption of each image) for every subset, empty ones included
        self._subset_captions: list[list[tuple[SubsetSpec, list[str]]]] = []
        self._train_counts: list[int] = []
        self._reg_counts: list[int] = []
        self._latents: dict[CacheJob, CachedLatents] | None = None
        self._same_image: dict[tuple[Path, BucketChoice], list[ImageItem]] = {}
        self.val_items: list[ImageItem] = []
        for d, spec in enumerate(self.specs):
            self._build_dataset(d, spec)
        if not self.num_train_images:
            raise DatasetConfigError("no training images: every dataset's pictures are validation pictures "
                                     "(validation_split = 1); lower validation_split or add a dataset to train on.")

    @classmethod
    def from_config(cls, dataset_config: dict | None, run_args: Mapping[str, Any], seed: int = 0,
                    source: str = "dataset config") -> "TrainingData":
        blueprint = load_dataset_blueprint(dataset_config, run_args, source=source)
        return cls(blueprint, seed, blueprint.warnings)

    # --- building ---------------------------------------------------------------------------
    def _build_dataset(self, d: int, spec: DatasetSpec) -> None:
        freq: dict[str, dict[str, int]] = {}
        kept: list[tuple[SubsetSpec, list[str]]] = []
        train: list[ImageItem] = []
        reg: list[ImageItem] = []
        for subset in spec.subsets:
            images = list_images(subset.image_dir)
            captions = [read_caption(image, subset.caption_extension) for image in images]
            missing = captions.count(None)
            if missing:
                use = (f"the class tokens {subset.class_tokens!r}" if subset.class_tokens is not None
                       else "an empty caption (no class tokens either)")
                self.warnings.append(f"{subset.image_dir}: {missing} of {len(images)} images have no "
                                     f"{subset.caption_extension} caption file: {use} is used for them.")
                captions = [(subset.class_tokens or "") if c is None else c for c in captions]
            count_tags(captions, freq.setdefault(subset.image_dir.name, {}))
            kept.append((subset, captions))
            if not images:
                continue
            pairs = list(zip(images, captions))
            if spec.validation_split > 0 and not subset.is_reg:
                pairs, held = split_train_val(pairs, spec.validation_split,
                                              self.seed if spec.validation_seed is None else spec.validation_seed)
                self.val_items += [ImageItem(image, caption, _image_size(image), subset, d, 1) for image, caption in held]
            for image, caption in pairs:
                (reg if subset.is_reg else train).append(
                    ImageItem(image, caption, _image_size(image), subset, d, subset.num_repeats))
        n_train = sum(i.repeats for i in train)
        n_reg = sum(i.repeats for i in reg)
        bset = BucketSet(spec.resolution, spec.enable_bucket, spec.min_bucket_reso,
                         spec.max_bucket_reso, spec.bucket_reso_steps, spec.bucket_no_upscale)
        for item in self.val_items:
            if item.dataset_index == d:
                item.choice = self._select(bset, item)
        if n_train == 0 and spec.validation_split > 0:   # a validation-only dataset
            self.buckets.append({})
            self._tag_frequency.append(freq)
            self._subset_captions.append(kept)
            self._train_counts.append(0)
            self._reg_counts.append(0)
            return
        if n_train == 0:
            raise DatasetConfigError(f"dataset #{d + 1}: no training images in "
                                     f"{', '.join(str(s.image_dir) for s in spec.subsets if not s.is_reg)}.")
        if n_reg > n_train:
            self.warnings.append(f"dataset #{d + 1}: {n_reg} reg images (with repeats) for {n_train} "
                                 "train images: some reg images are not used.")
        used_reg: list[ImageItem] = []
        count, first_round = 0, True
        while reg and count < n_train:
            for item in reg:
                if first_round:
                    used_reg.append(item)
                    count += item.repeats
                else:
                    item.repeats += 1
                    count += 1
                if count >= n_train:
                    break
            first_round = False
        buckets: dict[tuple[int, int], list[int]] = {}
        for item in train + used_reg:
            item.choice = self._select(bset, item)
            index = len(self.items)
            self.items.append(item)
            buckets.setdefault(item.choice.bucket, []).extend([index] * item.repeats)
        self.buckets.append(dict(sorted(buckets.items())))
        self._tag_frequency.append(freq)
        self._subset_captions.append(kept)
        self._train_counts.append(n_train)
        self._reg_counts.append(n_reg)

    @staticmethod
    def _select(bset: BucketSet, item: ImageItem) -> BucketChoice:
        try:
            return bset.select(*item.size)
        except ValueError as e:
            raise DatasetConfigError(f"{item.path}: {e}: remove it or upscale it.") from None

    # --- sizes ------------------------------------------------------------------------------
    @property
    def num_train_images(self) -> int:
        """Train images x repeats, summed over datasets (ss_num_train_images)."""
        return sum(self._train_counts)

    @property
    def num_reg_images(self) -> int:
        """Reg images x their own repeats, before cycling (ss_num_reg_images)."""
        return sum(self._reg_counts)

    def bucket_sizes(self) -> list[list[int]]:
        return [[len(v) for v in b.values()] for b in self.buckets]

    @property
    def num_batches_per_epoch(self) -> int:
        return sum(batches_per_epoch(sizes, spec.batch_size)
                   for sizes, spec in zip(self.bucket_sizes(), self.specs))

    @property
    def batch_size(self) -> int:
        """The first dataset's batch size (datasets may differ; each batches on its own)."""
        return self.specs[0].batch_size

    def has_caption_augmentation(self) -> bool:
        """True when a caption can differ between fetches (shuffle or dropout)."""
        return any(s.shuffle_caption or s.caption_dropout_rate > 0 for d in self.specs for s in d.subsets)

    def batches_per_rank(self, world_size: int = 1) -> int:
        return math.ceil(self.num_batches_per_epoch / world_size)

    # --- epochs -----------------------------------------------------------------------------
    def plan_epoch(self, epoch: int) -> list[BatchPlan]:
        rng = _rng(self.seed, epoch)
        plans = []
        for d, (spec, buckets) in enumerate(zip(self.specs, self.buckets)):
            for reso, members in buckets.items():
                shuffled = [members[i] for i in rng.permutation(len(members))]
                for start in range(0, len(shuffled), spec.batch_size):
                    plans.append((d, reso, tuple(shuffled[start:start + spec.batch_size])))
        order = rng.permutation(len(plans))
        return [BatchPlan(i, *plans[j]) for i, j in enumerate(order)]

    def rank_plans(self, epoch: int, rank: int = 0, world_size: int = 1) -> list[BatchPlan]:
        if world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is not in 0..{world_size - 1}")
        plans = self.plan_epoch(epoch)
        total = self.batches_per_rank(world_size) * world_size
        padded = plans + [BatchPlan(p.index, p.dataset_index, p.bucket, p.items, True)
                          for p in (plans[i % len(plans)] for i in range(len(plans), total))]
        return padded[rank::world_size]

    def epoch_batches(self, epoch: int, rank: int = 0, world_size: int = 1,
                      num_workers: int = 0) -> Iterator[Batch]:
        """This rank's batches of the epoch; num_workers > 0 loads ahead in threads."""
        plans = self.rank_plans(epoch, rank, world_size)
        if num_workers <= 0:
            for plan in plans:
                yield self.load_batch(plan, epoch)
            return
        with ThreadPoolExecutor(num_workers, thread_name_prefix="lora-data") as pool:
            window = []
            try:
                for plan in plans:
                    window.append(pool.submit(self.load_batch, plan, epoch))
                    if len(window) > 2 * num_workers:
                        yield window.pop(0).result()
                while window:
                    yield window.pop(0).result()
            finally:
                for f in window:
                    f.cancel()

    def load_batch(self, plan: BatchPlan, epoch: int) -> Batch:
        rng = _rng(self.seed, epoch, plan.index, 0xB47C)
        weight = self.specs[plan.dataset_index].prior_loss_weight
        pixels, latents, captions, flips, crops, origs = [], [], [], [], [], []
        for index in plan.items:
            item = self.items[index]
            flip = bool(item.subset.flip_aug and rng.random() < 0.5)
            captions.append(process_caption(item.caption, item.subset, rng))
            if self._latents is not None:
                latents.append(self._latents[self._job(item)].get(flip))
            else:
                arr = load_bucket_image(item.path, item.choice)
                pixels.append(to_tensor(arr[:, ::-1] if flip else arr))
            left, top = crop_offsets(item.choice.resized, item.choice.bucket)
            if flip:
                left = item.choice.resized[0] - item.choice.bucket[0] - left
            flips.append(flip)
            crops.append((top, left))
            origs.append((item.size[1], item.size[0]))
        items = [self.items[i] for i in plan.items]
        return Batch(
            images=torch.stack(pixels) if pixels else None,
            latents=torch.stack(latents) if latents else None,
            captions=captions,
            is_reg=torch.tensor([i.subset.is_reg for i in items], dtype=torch.bool),
            loss_weights=torch.tensor([weight if i.subset.is_reg else 1.0 for i in items],
                                      dtype=torch.float32),
            original_sizes=origs, crop_top_lefts=crops,
            target_sizes=[(plan.bucket[1], plan.bucket[0])] * len(items),
            flipped=flips, paths=[i.path for i in items], index=plan.index, padding=plan.padding)

    # --- validation ---------------------------------------------------------------------------
    def validation_plans(self, max_batches: int | None = None) -> list[BatchPlan]:
        """Validation batches in one fixed order: per dataset, per bucket, the split's order."""
        plans: list[tuple[int, tuple[int, int], list[int]]] = []
        for d, spec in enumerate(self.specs):
            by_bucket: dict[tuple[int, int], list[int]] = {}
            for i, item in enumerate(self.val_items):
                if item.dataset_index == d:
                    by_bucket.setdefault(item.choice.bucket, []).append(i)
            for reso, members in sorted(by_bucket.items()):
                for start in range(0, len(members), spec.batch_size):
                    plans.append((d, reso, members[start:start + spec.batch_size]))
        out = [BatchPlan(i, d, reso, tuple(m)) for i, (d, reso, m) in enumerate(plans)]
        return out[:max_batches] if max_batches else out

    def load_validation_batch(self, plan: BatchPlan) -> Batch:
        """Pixels (never cached latents), unflipped, captions as written."""
        items = [self.val_items[i] for i in plan.items]
        weight = self.specs[plan.dataset_index].prior_loss_weight
        crops = [tuple(reversed(crop_offsets(i.choice.resized, i.choice.bucket))) for i in items]
        return Batch(
            images=torch.stack([to_tensor(load_bucket_image(i.path, i.choice)) for i in items]), latents=None,
            captions=[i.caption for i in items], is_reg=torch.zeros(len(items), dtype=torch.bool),
            loss_weights=torch.tensor([1.0 if not i.subset.is_reg else weight for i in items], dtype=torch.float32),
            original_sizes=[(i.size[1], i.size[0]) for i in items], crop_top_lefts=crops,
            target_sizes=[(plan.bucket[1], plan.bucket[0])] * len(items), flipped=[False] * len(items),
            paths=[i.path for i in items], index=plan.index)

    @property
    def num_validation_images(self) -> int:
        return len(self.val_items)

    # --- latent cache -----------------------------------------------------------------------
    def _job(self, item: ImageItem) -> CacheJob:
        flip = any(i.subset.flip_aug for i in self._same_image.get((item.path, item.choice), [item]))
        return CacheJob(item.path, item.choice, flip)

    def cache_latents(self, encode: Encode, to_disk: bool, batch_size: int = 1, cache_key: str = "",
                      progress: Callable[[int, int], None] | None = None) -> CacheReport:
        """Encode every (image, bucket) once; afterwards batches carry latents, not pixels.

        flip_aug subsets get the mirrored image encoded too (sd-scripts does the same).
        cache_key names the encoder (e.g. the VAE's hash): a disk cache made with another key is
        stale. Data parallel with to_disk: run it on the main process first, then on the others
        (they find the files valid and only read them)."""
        self._same_image: dict[tuple[Path, BucketChoice], list[ImageItem]] = {}
        for item in self.items:
            self._same_image.setdefault((item.path, item.choice), []).append(item)
        jobs = [self._job(item) for item in self.items]
        self._latents, report = build_cache(jobs, encode, to_disk, batch_size, cache_key, progress)
        self.warnings += report.warnings
        return report

    @property
    def latents_cached(self) -> bool:
        return self._latents is not None

def split_train_val(pairs: list, split: float, seed: int) -> tuple[list, list]:
    """sd-scripts' split_train_val: shuffle with random.seed(seed), then train = the first
    ceil(n x (1 - split)), validation = the last round(n x split) (they overlap by one for some n, as
    there)."""
    shuffled = list(pairs)
    random.Random(seed).shuffle(shuffled)
    n = len(shuffled)
    return shuffled[:math.ceil(n * (1 - split))], shuffled[n - round(n * split):]


def _image_size(path: Path) -> tuple[int, int]:
    try:
        with Image.open(path) as im:
            return im.size
    except Exception as e:
        raise DatasetConfigError(f"{path}: cannot read this image ({e}): remove or re-save it.") from None


def build_training_data(specs: list[DatasetSpec], seed: int = 0) -> TrainingData:
    return TrainingData(specs, seed)

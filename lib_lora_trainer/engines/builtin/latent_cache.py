"""Latent cache: each (image, bucket) encoded once, in memory or next to the image.

On disk: `<image stem>_<W>x<H>_lt.npz` (our own format, not sd-scripts' `_sd.npz`) holding
`latents` (float32, CxH/8xW/8), `latents_flipped` when a flip_aug subset uses the image,
`sha256` of the image file, `bucket` [W, H], `resized` [w, h] and `cache_key` (which encoder made
it). A file whose hash, sizes or key differ, or that lacks the flipped latents now needed, is
stale and encoded again. Files are written to a temporary name and renamed, so an interrupted run
never leaves a half-written cache behind.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import torch

from .buckets import BucketChoice, load_bucket_image, to_tensor

log = logging.getLogger(__name__)

Encode = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class CacheJob:
    path: Path
    choice: BucketChoice
    flip: bool  # also encode the mirrored image


@dataclass
class CachedLatents:
    latents: torch.Tensor | None = None          # in memory ...
    flipped: torch.Tensor | None = None
    file: Path | None = None                     # ... or read from this file at fetch time

    def get(self, flipped: bool) -> torch.Tensor:
        if self.file is not None:
            with np.load(self.file) as z:
                return torch.from_numpy(z["latents_flipped" if flipped else "latents"].copy())
        return self.flipped if flipped else self.latents


@dataclass
class CacheReport:
    encoded: int = 0          # images sent through the encoder (a flipped copy counts once more)
    loaded: int = 0           # valid cache files reused
    written: int = 0          # cache files written
    warnings: list[str] = field(default_factory=list)


def cache_file(image: Path, bucket: tuple[int, int]) -> Path:
    return image.with_name(f"{image.stem}_{bucket[0]}x{bucket[1]}_lt.npz")


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _valid(file: Path, sha: str, job: CacheJob, cache_key: str) -> bool:
    if not file.is_file():
        return False
    try:
        with np.load(file) as z:
            return (str(z["sha256"]) == sha and str(z["cache_key"]) == cache_key
                    and tuple(z["bucket"].tolist()) == job.choice.bucket
                    and tuple(z["resized"].tolist()) == job.choice.resized
                    and (not job.flip or "latents_flipped" in z.files))
    except Exception:  # unreadable, truncated or an older layout: encode again
        return False


def _write(file: Path, latents: torch.Tensor, flipped: torch.Tensor | None, sha: str,
           job: CacheJob, cache_key: str) -> None:
    arrays = {"latents": latents.numpy(), "sha256": np.array(sha), "cache_key": np.array(cache_key),
              "bucket": np.array(job.choice.bucket), "resized": np.array(job.choice.resized)}
    if flipped is not None:
        arrays["latents_flipped"] = flipped.numpy()
    tmp = file.with_name(file.name + f".tmp{os.getpid()}.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, file)


def build_cache(jobs: Iterable[CacheJob], encode: Encode, to_disk: bool, batch_size: int = 1,
                cache_key: str = "", progress: Callable[[int, int], None] | None = None,
                ) -> tuple[dict[CacheJob, CachedLatents], CacheReport]:
    jobs = list(dict.fromkeys(jobs))
    report = CacheReport()
    out: dict[CacheJob, CachedLatents] = {}
    pending: list[tuple[CacheJob, Path | None, str]] = []
    owners: dict[Path, CacheJob] = {}
    for job in jobs:
        file, sha = None, ""
        if to_disk:
            file = cache_file(job.path, job.choice.bucket)
            if owners.setdefault(file, job) != job:  # a.png + a.jpg, or one image scaled two ways
                report.warnings.append(f"{job.path.name} and {owners[file].path.name} would share the "
                                       f"cache file {file.name}; this one is cached in memory only.")
                file = None
            else:
                sha = file_sha256(job.path)
                if _valid(file, sha, job, cache_key):
                    out[job] = CachedLatents(file=file)
                    report.loaded += 1
                    continue
        pending.append((job, file, sha))
    pending.sort(key=lambda p: p[0].choice.bucket)  # one bucket size per encoder call
    done, total = 0, sum(1 + p[0].flip for p in pending)
    for bucket in sorted({p[0].choice.bucket for p in pending}):
        group = [p for p in pending if p[0].choice.bucket == bucket]
        # each input row: (index into group, flipped?)
        rows = [(i, False) for i in range(len(group))] + [(i, True) for i, p in enumerate(group) if p[0].flip]
        rows.sort()
        results: dict[tuple[int, bool], torch.Tensor] = {}
        for start in range(0, len(rows), batch_size):
            chunk = rows[start:start + batch_size]
            pixels = {}
            for i, _ in chunk:
                if i not in pixels:
                    pixels[i] = load_bucket_image(group[i][0].path, group[i][0].choice)
            batch = torch.stack([to_tensor(pixels[i][:, ::-1] if flip else pixels[i]) for i, flip in chunk])
            with torch.no_grad():
                lat = encode(batch)
            if not isinstance(lat, torch.Tensor) or lat.ndim != 4 or lat.shape[0] != len(chunk):
                raise ValueError(f"encode must return a Bx C x h x w tensor for {len(chunk)} images, got "
                                 f"{getattr(lat, 'shape', type(lat))}")
            lat = lat.detach().to("cpu", torch.float32)
            for row, latent in zip(chunk, lat):
                results[row] = latent.clone()
            report.encoded += len(chunk)
            done += len(chunk)
            if progress:
                progress(done, total)
        for i, (job, file, sha) in enumerate(group):
            latents, flipped = results[(i, False)], results.get((i, True))
            if file is not None:
                try:
                    _write(file, latents, flipped, sha, job, cache_key)
                except OSError as e:
                    report.warnings.append(f"cannot write {file} ({e}); cached in memory only.")
                    out[job] = CachedLatents(latents, flipped)
                    continue
                report.written += 1
                out[job] = CachedLatents(file=file)
            else:
                out[job] = CachedLatents(latents, flipped)
    for w in report.warnings:
        log.warning(w)
    return out, report

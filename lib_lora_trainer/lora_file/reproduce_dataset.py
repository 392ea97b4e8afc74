"""The training data a LoRA's metadata describes: image folders, repeats, trigger and class word,
the per-dataset options, and the folder on disk if it still exists.

sd-scripts records only each image folder's base name ("100_VadymPanchenko"), its repeats and
image count, and per folder the lower-cased tag counts of the captions: never a full path and
never the captions themselves. So the folder is searched for by name, and the captions are
never recovered from the file.
"""

from __future__ import annotations

import os
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from .reproduce_keys import Recovery, json_value, literal, raw

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".avif", ".jxl")
# Words that are in every caption of many datasets but name a class, not a subject.
GENERIC_TAGS = {"man", "woman", "person", "girl", "boy", "1girl", "1boy", "solo", "photo", "portrait", "male",
                "female", "people", "face", "realistic", "outdoors", "indoors"}
SEARCH_DEPTH = 4
SEARCH_MAX_DIRS = 20000


@dataclass
class DatasetInfoGuess:
    layout: str = "unknown"              # "dataset_config" (ss_datasets) | "folder" (ss_dataset_dirs)
    folders: list[dict] = field(default_factory=list)   # name, repeats, images, class_tokens
    found: str | None = None             # a folder on disk holding the training images

    def to_dict(self) -> dict:
        return {"layout": self.layout, "folders": self.folders, "found": self.found}


def _subset_options(subset: Mapping[str, Any], out: Recovery) -> None:
    src = "ss_datasets"
    for key in ("shuffle_caption", "keep_tokens", "flip_aug"):
        if key in subset and subset[key] is not None:
            out.set(key, subset[key], src, subset[key])
    for key, off in (("color_aug", False), ("random_crop", False), ("enable_wildcard", False),
                     ("caption_prefix", None), ("caption_suffix", None), ("secondary_separator", None),
                     ("keep_tokens_separator", "")):
        if subset.get(key, off) not in (off, None):
            out.miss(f"subset.{key}", "TrainingConfig has no field for this dataset option", src,
                     f"{key}={subset[key]!r}")


def _from_datasets(datasets: list, out: Recovery, guess: DatasetInfoGuess) -> None:
    guess.layout = "dataset_config"
    if len(datasets) > 1:
        out.miss("dataset", f"{len(datasets)} datasets (e.g. different resolutions); TrainingConfig trains one: "
                            "the first one's settings are used", "ss_datasets")
    d = datasets[0] if isinstance(datasets[0], dict) else {}
    if d.get("batch_size_per_device") is not None:
        out.set("batch_size", d["batch_size_per_device"], "ss_datasets", d["batch_size_per_device"])
    _resolution(d.get("resolution"), "ss_datasets", out)
    if d.get("enable_bucket") is not None:
        out.set("enable_bucket", d["enable_bucket"], "ss_datasets", d["enable_bucket"])
    if d.get("enable_bucket"):
        for key in ("min_bucket_reso", "max_bucket_reso"):
            if d.get(key) is not None:
                out.set(key, d[key], "ss_datasets", d[key])
        out.notes.append("bucket_reso_steps and bucket_no_upscale are not in the metadata of a dataset-config "
                         "run: TrainingConfig's defaults are used.")
    subsets = [s for s in d.get("subsets") or [] if isinstance(s, dict) and not s.get("is_reg")]
    for s in subsets:
        guess.folders.append(_folder(s.get("image_dir") or s.get("metadata_file"), s.get("num_repeats"),
                                     s.get("img_count"), s.get("class_tokens")))
    if subsets:
        _subset_options(subsets[0], out)
        if any({k: s.get(k) for k in ("shuffle_caption", "keep_tokens", "flip_aug")} !=
               {k: subsets[0].get(k) for k in ("shuffle_caption", "keep_tokens", "flip_aug")} for s in subsets):
            out.notes.append("The image folders had different caption options; the first folder's are used.")
    out.notes.append("caption_dropout_rate: a dataset-config run records only the command-line value "
                     "(ss_caption_dropout_rate), not one set in dataset.toml.")


def _folder(name: Any, repeats: Any, images: Any, class_tokens: Any) -> dict:
    """One image folder, with anything of the wrong JSON type dropped (metadata is only text)."""
    def whole(v):
        return v if isinstance(v, int) and not isinstance(v, bool) else None
    return {"name": str(name) if isinstance(name, (str, int, float)) else None, "repeats": whole(repeats),
            "images": whole(images), "class_tokens": class_tokens if isinstance(class_tokens, str) else None}


def _resolution(value: Any, key: str, out: Recovery) -> None:
    if isinstance(value, str):
        value = literal(value)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = (value, value)
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        return
    w, h = value
    if w != h:
        out.miss("resolution", f"a non-square resolution {w}x{h}; TrainingConfig trains square sizes (buckets "
                               "keep the aspect ratio)", key, f"{w}x{h}")
        return
    out.set("resolution", w, key, str(value))


def _from_folders(md: Mapping[str, str], out: Recovery, guess: DatasetInfoGuess) -> None:
    dirs = json_value(md, "ss_dataset_dirs", out)
    if not isinstance(dirs, dict):
        return
    guess.layout = "folder"
    for name, info in dirs.items():
        info = info if isinstance(info, dict) else {}
        head, sep, rest = str(name).partition("_")   # sd-scripts: "<repeats>_<class tokens>"
        guess.folders.append(_folder(name, info.get("n_repeats"), info.get("img_count"),
                                     rest if sep and head.isdigit() else None))
    if "ss_resolution" in md:
        _resolution(raw(md, "ss_resolution"), "ss_resolution", out)


def _split_tokens(class_tokens: str, out: Recovery) -> None:
    trigger = out.values.get("trigger")
    if trigger and class_tokens.startswith(trigger + " "):
        out.set("class_token", class_tokens[len(trigger) + 1:].strip(), "class_tokens")
        return
    if trigger:
        if class_tokens.strip() == trigger:
            out.set("class_token", "", "class_tokens")
        return
    first, _, rest = class_tokens.strip().partition(" ")
    out.set("trigger", first, "class_tokens")
    out.set("class_token", rest.strip(), "class_tokens")
    if rest.strip():
        out.set("class_token", rest.strip(), "class_tokens")
        out.notes.append(f"The folder's class tokens {class_tokens!r} were split at the first space: trigger "
                         f"{first!r}, class word {rest.strip()!r}.")


def _trigger_from_tags(md: Mapping[str, str], out: Recovery, guess: DatasetInfoGuess) -> None:
    freq = json_value(md, "ss_tag_frequency", out)
    if not isinstance(freq, dict) or not guess.folders:
        return
    first = guess.folders[0]
    tags = freq.get(first["name"])
    if not isinstance(tags, dict):
        return
    count = first.get("images")
    everywhere = sorted(t for t, n in tags.items() if n == count and " " not in t and t not in GENERIC_TAGS)
    if len(everywhere) == 1:
        out.set("trigger", everywhere[0], "ss_tag_frequency")
        out.notes.append(f"Trigger guessed from ss_tag_frequency: {everywhere[0]!r} is in every caption "
                         "(sd-scripts lower-cases the tags, so check its spelling).")
    elif everywhere:
        out.notes.append(f"Trigger not guessed: several tags are in every caption ({', '.join(everywhere[:8])}).")


def _trigger(md: Mapping[str, str], out: Recovery, guess: DatasetInfoGuess) -> None:
    comment = raw(md, "ss_training_comment")
    if comment and comment.startswith("trigger: "):
        out.set("trigger", comment[len("trigger: "):].strip(), "ss_training_comment")
    elif comment:
        out.notes.append(f"Training comment: {comment[:300]}")
    phrase = raw(md, "modelspec.trigger_phrase")
    if "trigger" not in out.values and phrase:
        out.set("trigger", phrase, "modelspec.trigger_phrase")
    tokens = next((f["class_tokens"] for f in guess.folders if f.get("class_tokens")), None)
    if tokens:
        _split_tokens(tokens, out)
    if "trigger" not in out.values:
        _trigger_from_tags(md, out, guess)
    if "trigger" not in out.values:
        out.miss("trigger", "no trigger in the metadata (no 'trigger: ...' comment, folder class tokens or tag in "
                            "every caption)", None)


def _repeats(out: Recovery, guess: DatasetInfoGuess) -> None:
    repeats = [f["repeats"] for f in guess.folders if f.get("repeats") is not None]
    if not repeats:
        return
    if len(set(repeats)) > 1:
        listed = ", ".join(f"{f['name']} x{f['repeats']}" for f in guess.folders)
        out.miss("repeats", f"image folders with different repeats ({listed}); TrainingConfig has one repeats "
                            "for all: the first folder's is used", "ss_dataset_dirs")
    out.set("repeats", repeats[0], "ss_dataset_dirs" if guess.layout == "folder" else "ss_datasets")


def _count_images(folder: Path) -> int:
    try:
        return sum(1 for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    except OSError:
        return 0


def find_folders(names: Sequence[str], roots: Sequence[str | os.PathLike]) -> dict[str, Path]:
    """name -> the first folder of that name under `roots` (breadth first, SEARCH_DEPTH levels deep,
    hidden folders and links skipped) that holds images."""
    wanted, found = set(names), {}
    seen = 0
    for root in roots:
        queue = deque([(Path(root), 0)])
        while queue and len(found) < len(wanted) and seen < SEARCH_MAX_DIRS:
            folder, depth = queue.popleft()
            seen += 1
            if folder.name in wanted and folder.name not in found and _count_images(folder):
                found[folder.name] = folder
            if depth >= SEARCH_DEPTH:
                continue
            try:
                subs = sorted(p for p in folder.iterdir() if p.is_dir() and not p.is_symlink()
                              and not p.name.startswith("."))
            except OSError:
                continue
            queue.extend((p, depth + 1) for p in subs)
    return found


def _locate(out: Recovery, guess: DatasetInfoGuess, roots: Sequence[str | os.PathLike]) -> None:
    names = [f["name"] for f in guess.folders if f.get("name")]
    if not names:
        out.miss("dataset", "the metadata names no image folder", "ss_dataset_dirs")
        return
    found = find_folders(names, roots) if roots else {}
    if not found:
        where = f" under {', '.join(str(r) for r in roots)}" if roots else ""
        out.miss("dataset", f"sd-scripts records only the folder name{'s' if len(names) > 1 else ''} "
                            f"{', '.join(repr(n) for n in names[:5])}; no such folder with images was found{where}",
                 "ss_dataset_dirs", ", ".join(names[:5]))
        return
    paths = list(found.values())
    parents = {p.parent for p in paths}
    guess.found = str(paths[0] if len(paths) == 1 else (parents.pop() if len(parents) == 1 else paths[0]))
    for f in guess.folders:
        path = found.get(f["name"])
        if path is None:
            out.notes.append(f"Image folder {f['name']!r} was not found; only the others were.")
        elif f.get("images") is not None and _count_images(path) != f["images"]:
            out.notes.append(f"{path} has {_count_images(path)} images; the LoRA was trained on {f['images']}.")


def dataset(md: Mapping[str, str], out: Recovery, roots: Sequence[str | os.PathLike]) -> DatasetInfoGuess:
    guess = DatasetInfoGuess()
    datasets = json_value(md, "ss_datasets", out)
    if isinstance(datasets, list) and datasets:
        _from_datasets(datasets, out, guess)
    else:
        _from_folders(md, out, guess)
    _repeats(out, guess)
    _trigger(md, out, guess)
    _locate(out, guess, roots)
    if guess.found:
        out.notes.append(f"Captions: the .txt files in {guess.found} (the metadata keeps only tag counts).")
    else:
        out.miss("captions", "the metadata keeps only tag counts (ss_tag_frequency), never the captions: use the "
                             "original dataset's .txt files", "ss_tag_frequency")
    return guess

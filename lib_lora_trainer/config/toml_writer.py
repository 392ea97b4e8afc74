"""Write a job's run.toml and dataset.toml (and the sample prompt file) with tomli_w, atomically.

Both engines read the same files: `--config_file run.toml --dataset_config dataset.toml`.
The image folders are found the way sd-scripts finds them (direct subfolders named
`<repeats>_<class tokens>`, lib_lora_trainer.dataset.layout), and the run is refused here, with
the fix, where sd-scripts would print "No data found" and exit 0.
"""

from __future__ import annotations

import os
from pathlib import Path

import tomli_w

from lib_lora_trainer.atomic import write_text
from lib_lora_trainer.dataset.layout import parse_folder_name

from .errors import ConfigError
from .kohya_args import Subset, dataset_config, run_args
from .training_config import TrainingConfig

__all__ = ["write_training_tomls", "find_subsets", "RUN_TOML", "DATASET_TOML", "SAMPLE_PROMPTS"]

RUN_TOML = "run.toml"
DATASET_TOML = "dataset.toml"
SAMPLE_PROMPTS = "sample_prompts.txt"
# sd-scripts' glob_images (and engines/builtin): direct files, either case
_IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".webp", ".bmp"}


def _count_images(folder: Path) -> int:
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return 0
    return sum(1 for e in entries if not e.name.startswith(".") and os.path.splitext(e.name)[1].lower()
               in _IMAGE_EXTENSIONS and e.is_file())


def find_subsets(image_dir_parent: str | os.PathLike, repeats: int | None = None) -> list[Subset]:
    """One subset per `<repeats>_<class tokens>` folder with images, as sd-scripts reads them.
    With `repeats`, every folder must say that many (the step count the user saw before Train)."""
    parent = Path(image_dir_parent).expanduser().resolve()
    if not parent.is_dir():
        raise ConfigError(None, f"image folder {str(parent)!r} does not exist: prepare the dataset first.")
    subsets, skipped, empty = [], [], []
    for child in sorted(parent.iterdir(), key=lambda p: p.name):
        if not child.is_dir():
            continue
        parsed = parse_folder_name(child.name)
        if parsed is None:
            skipped.append(child.name)
            continue
        if not _count_images(child):
            empty.append(child.name)
            continue
        if repeats is not None and parsed.repeats != repeats:
            raise ConfigError("repeats", f"the prepared folder {child.name!r} means {parsed.repeats} repeats but the "
                                         f"config says repeats = {repeats}: prepare the dataset again, or set "
                                         f"repeats = {parsed.repeats}.")
        subsets.append(Subset(str(child), parsed.repeats, parsed.class_tokens))
    if not subsets:
        seen = []
        if skipped:
            seen.append(f"folders without a <repeats>_ prefix: {', '.join(skipped[:5])}")
        if empty:
            seen.append(f"folders without images: {', '.join(empty[:5])}")
        raise ConfigError(None, f"No data found in {str(parent)!r}: it must hold folders named like "
                                f"'100_name' with .png/.jpg/.jpeg/.webp/.bmp images directly inside"
                                f"{' (found ' + '; '.join(seen) + ')' if seen else ''}.")
    return subsets


def write_training_tomls(cfg: TrainingConfig, *, job_dir: str | os.PathLike,
                         image_dir_parent: str | os.PathLike, model_type: str, output_dir: str | os.PathLike,
                         logging_dir: str | os.PathLike | None, tokenizer_cache_dir: str | os.PathLike | None,
                         sample_prompts_file: str | os.PathLike | None = None, v_parameterization: bool = False,
                         resume: str | os.PathLike | None = None,
                         validation_dir: str | os.PathLike | None = None) -> tuple[Path, Path]:
    """Write job_dir/run.toml and job_dir/dataset.toml; returns their paths.

    cfg.sample_prompts go to job_dir/sample_prompts.txt unless `sample_prompts_file` names an
    existing prompt file. Paths are written absolute."""
    job = Path(job_dir).expanduser().resolve()
    subsets = find_subsets(image_dir_parent, cfg.repeats)

    def absolute(p: str | os.PathLike | None) -> str | None:
        return None if p is None else str(Path(p).expanduser().resolve())

    prompts_text = None
    if sample_prompts_file is not None:
        prompts = absolute(sample_prompts_file)
        if not Path(prompts).is_file():
            raise ConfigError("sample_prompts", f"sample prompt file {prompts!r} does not exist.")
    elif cfg.sample_prompts:
        prompts = str(job / SAMPLE_PROMPTS)
        prompts_text = "\n".join(cfg.sample_prompts) + "\n"
    else:
        prompts = None
    # everything is checked before the first file is written
    run = run_args(cfg, model_type=model_type, output_dir=absolute(output_dir), logging_dir=absolute(logging_dir),
                   tokenizer_cache_dir=absolute(tokenizer_cache_dir), sample_prompts_file=prompts,
                   v_parameterization=v_parameterization, resume=absolute(resume))
    if Path(cfg.base_model).expanduser().exists():  # a local file or folder (else e.g. a hub id)
        run["pretrained_model_name_or_path"] = absolute(cfg.base_model)
    validation = absolute(validation_dir) if validation_dir and _count_images(Path(validation_dir)) else None
    dataset = dataset_config(cfg, subsets, validation)
    if validation:  # the held-out pictures' loss at every save (and after every epoch, sd-scripts' default)
        run["validate_every_n_steps"] = cfg.save_every_n_steps
        run["validate_every_n_epochs"] = cfg.save_every_n_epochs
        run = {k: v for k, v in run.items() if v is not None}
    if prompts_text is not None:
        write_text(prompts, prompts_text)
    run_path, dataset_path = job / RUN_TOML, job / DATASET_TOML
    write_text(dataset_path, tomli_w.dumps(dataset))
    write_text(run_path, tomli_w.dumps(run))
    return run_path, dataset_path

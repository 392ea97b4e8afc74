"""Turning a dataset + TrainingConfig into a ready job folder: prepared images, TOMLs, plan."""

from __future__ import annotations

from pathlib import Path

import tomli_w

from lib_lora_trainer import atomic, toml_read


def probe_device() -> tuple[bool, bool]:
    """(CUDA available, bf16 supported); torch is imported only here, and only if present."""
    try:
        import torch
    except ImportError:
        return False, False
    if not torch.cuda.is_available():
        return False, False
    return True, bool(torch.cuda.is_bf16_supported())


def free_gpu_gib() -> float | None:
    try:
        import torch
        if torch.cuda.is_available():
            free, _ = torch.cuda.mem_get_info()
            return free / 2**30
    except Exception:  # no torch, no driver: no estimate against free memory
        pass
    return None


def vram_report(config, model_type: str) -> dict:
    from lib_lora_trainer.config.vram import estimate_peak_vram_gib, vram_warning

    est = estimate_peak_vram_gib(config, model_type)
    free = free_gpu_gib()
    return {"estimate_gib": round(est.gib, 1), "low_gib": round(est.low, 1), "high_gib": round(est.high, 1),
            "basis": est.basis, "free_gib": None if free is None else round(free, 1),
            "warning": vram_warning(config, model_type, free) if free is not None else None}


def hold_out(image_dir: Path, dest: Path, k: int) -> list[Path]:
    """Move k prepared pictures (evenly spread, with their captions) out of training into `dest`."""
    if k <= 0:
        return []
    images = sorted(p for p in image_dir.iterdir() if p.suffix.lower() != ".txt" and p.is_file())
    if k >= len(images):
        raise ValueError(f"holdout_images: {k} would leave no picture to train on ({len(images)} prepared); "
                         f"use at most {len(images) - 1}")
    step = len(images) / k
    chosen = [images[int(i * step)] for i in range(k)]
    dest.mkdir(parents=True, exist_ok=True)
    moved = []
    for img in chosen:
        img.rename(dest / img.name)
        caption = img.with_suffix(".txt")
        if caption.is_file():
            caption.rename(dest / caption.name)
        moved.append(dest / img.name)
    return moved


def prepare_job(job_dir: Path, dataset_src, config, crop: str | None, settings: dict) -> dict:
    from lib_lora_trainer.config.arithmetic import total_steps
    from lib_lora_trainer.config.device import device_corrections
    from lib_lora_trainer.config.toml_writer import write_training_tomls
    from lib_lora_trainer.dataset.prepare import PrepareOptions, prepare_dataset
    from lib_lora_trainer.engines.base import JobLaunch
    from lib_lora_trainer.engines.registry import get_engine
    from lib_lora_trainer.models.detect import detect_model_type

    info = detect_model_type(config.base_model)  # fails early, before any image is written
    cuda, bf16 = settings.get("device_override") or probe_device()
    config, corrections = device_corrections(config, cuda_available=cuda, bf16_supported=bf16)
    prepared = prepare_dataset(dataset_src, PrepareOptions(
        out=job_dir / "dataset", trigger=config.trigger, class_token=config.class_token, repeats=config.repeats,
        resolution=config.resolution, crop=crop or config.crop, trigger_in_captions=True))
    held_out = hold_out(prepared.image_dir, job_dir / "holdout", int(config.holdout_images or 0))
    output_dir = job_dir / "output"
    output_dir.mkdir(exist_ok=True)
    tokenizer_cache = Path(settings.get("tokenizer_cache_dir") or (job_dir.parent.parent / "tokenizers"))
    run_toml, dataset_toml = write_training_tomls(
        config, job_dir=job_dir, image_dir_parent=job_dir / "dataset" / "img", model_type=info.model_type,
        output_dir=output_dir, logging_dir=job_dir / "logs", tokenizer_cache_dir=tokenizer_cache,
        v_parameterization=bool(info.v_prediction), validation_dir=job_dir / "holdout" if held_out else None)
    engine = get_engine(config.engine, settings)
    launch = JobLaunch(run_toml=run_toml, dataset_toml=dataset_toml, model_type=info.model_type,
                       v_prediction=bool(info.v_prediction), num_processes=int(config.num_processes or 1),
                       mixed_precision=config.mixed_precision, gpu_ids=config.gpu_ids,
                       num_cpu_threads_per_process=int(config.num_cpu_threads_per_process or 2), job_dir=job_dir)
    extra = engine.extra_run_keys(launch)
    if extra:  # e.g. kohya's console_log_simple; merged with tomli-w, never by string edits
        run = toml_read.loads(run_toml.read_text(encoding="utf-8"))
        run.update(extra)
        atomic.write_text(run_toml, tomli_w.dumps(run))
    check_run = getattr(engine, "check_run", None)  # kohya: keys this sd-scripts would ignore stop here
    engine_notes = check_run(launch) if check_run else []
    images = len(prepared.images) - len(held_out)
    return {
        "model_type": info.model_type, "v_prediction": bool(info.v_prediction), "base_model": str(config.base_model),
        "output_dir": str(output_dir), "trigger": config.trigger, "num_images": images,
        "total_steps": total_steps(config, images), "skipped": prepared.skipped,
        "held_out": [p.name for p in held_out],
        "corrections": [c.__dict__ if hasattr(c, "__dict__") else str(c) for c in corrections],
        "config": config.to_dict(), "problems": [p.to_dict() for p in prepared.report.problems],
        "vram": vram_report(config, info.model_type) if cuda else None,
        "engine_notes": engine_notes,
    }

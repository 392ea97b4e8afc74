"""Acting on the test's recommendation (ranking.py): its weight becomes the installed LoRA's
"preferred weight" (what A1111 puts in `<lora:name:w>` when the card is clicked), and the
recommended checkpoint can replace the installed file when it is an earlier one."""

from __future__ import annotations

import shutil
from pathlib import Path

from lib_lora_trainer import atomic
from lib_lora_trainer.confine import PathRefused, resolve_inside
from lib_lora_trainer.lora_file.sidecar import Sidecar, read_sidecar, write_sidecar

from .job_eval import report_for_job


INSTALLED_CHECKPOINT = "installed_checkpoint.txt"   # in the job folder: which saved file is installed


class RecommendError(ValueError):
    pass


def installed_checkpoint(job) -> str:
    """The name (in the test's ranking) of the file now installed: the final LoRA's installed name,
    or the checkpoint install_recommended put in its place."""
    try:
        return (Path(job.job_dir) / INSTALLED_CHECKPOINT).read_text(encoding="utf-8").strip()
    except OSError:
        return Path(job.installed_path or "").name


def _note(sidecar: Sidecar, line: str) -> None:
    kept = [n for n in sidecar.notes.splitlines() if not n.startswith("Test recommendation:")]
    sidecar.notes = "\n".join([*kept, f"Test recommendation: {line}"]).strip()


def set_preferred_weight(lora: Path, ranking: dict) -> float | None:
    """When the recommended cell is this file: its weight goes into the sidecar. Returns it."""
    best = (ranking or {}).get("best")
    lora = Path(lora)
    if not best or not ranking.get("confident") or best["checkpoint"] != lora.name or not lora.is_file():
        return None
    sidecar = read_sidecar(lora) or Sidecar()
    sidecar.preferred_weight = float(best["weight"])
    _note(sidecar, ranking["sentence"])
    write_sidecar(lora, sidecar)
    return sidecar.preferred_weight


def recommended_for_job(job) -> dict:
    """The best cell of the job's last test (report.json), or a RecommendError saying what to do."""
    report = report_for_job(Path(job.job_dir))
    if report is None:
        raise RecommendError(f"job {job.id} has no test report: run its test first (sweep checkpoints "
                             "compares every saved file)")
    best = (report.get("ranking") or {}).get("best")
    if not best or not report["ranking"].get("confident"):
        raise RecommendError(f"job {job.id}'s test recommends nothing: "
                             f"{(report.get('ranking') or {}).get('sentence') or 'it ran before rankings existed'}")
    return {**best, "sentence": report["ranking"]["sentence"]}


def install_recommended(job) -> tuple[Path, dict]:
    """Replace the job's installed LoRA with the recommended checkpoint (from `<job>/output`),
    keep its name and sidecar, set the preferred weight. Returns (installed path, best cell)."""
    best = recommended_for_job(job)
    installed = Path(job.installed_path or "")
    if not job.installed_path or not installed.is_file():
        raise RecommendError(f"job {job.id}'s LoRA {installed} is not installed (moved or deleted)")
    if best["checkpoint"] != installed.name:
        output = Path(job.job_dir) / "output"
        try:
            src = resolve_inside(str(output / best["checkpoint"]), [output], "checkpoint", what="output")
        except PathRefused as exc:
            raise RecommendError(f"recommended checkpoint: {exc}") from None
        if not src.is_file():
            raise RecommendError(f"the recommended checkpoint {src} is gone; test the job again")
        with atomic.atomic_path(installed) as tmp:
            shutil.copyfile(src, tmp)
    atomic.write_text(Path(job.job_dir) / INSTALLED_CHECKPOINT, best["checkpoint"])
    sidecar = read_sidecar(installed) or Sidecar()
    sidecar.preferred_weight = float(best["weight"])
    _note(sidecar, f"{best['checkpoint']} installed as {installed.name}. {best['sentence']}")
    write_sidecar(installed, sidecar)
    return installed, best

"""`python -m lib_lora_trainer generate`: one txt2img image from a model plus LoRAs, offline.

    generate --model M [--lora FILE[:WEIGHT] ...] --prompt P [--negative N] [--seed S]
             [--steps K] [--sampler NAME] [--width W] [--height H] [--cfg 7.0] --out PNG

Exit codes: 0 written, 1 generation failed (model/LoRA could not be loaded...), 2 usage error
(bad --lora spec, unknown sampler, missing file, bad size...). Arguments are all checked before
the model is loaded. The PNG is written atomically and carries A1111-style "parameters" text
(LoRAs as <lora:name:weight> tags), so A1111's PNG Info can send it to txt2img.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path

# diffusers/huggingface_hub read this when imported: never reach for the hub from the CLI.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
DEFAULT_SAMPLER = "Euler a"
DEFAULT_STEPS = 20
DEFAULT_CFG = 7.0

__all__ = ["LoraSpec", "UsageError", "add_parser", "build_infotext", "parse_lora_spec", "run"]


class UsageError(ValueError):
    """A command-line argument that makes the command impossible to run."""


@dataclass(frozen=True)
class LoraSpec:
    path: Path
    weight: float = 1.0


def _is_drive(head: str) -> bool:
    return len(head) == 1 and head.isalpha()


def parse_lora_spec(spec: str) -> LoraSpec:
    """`FILE[:WEIGHT]`, split on the LAST ':' so Windows paths (C:\\x\\y.safetensors:0.8) work.

    Without a weight (no ':' at all, or the part after the last ':' is a path such as
    "C:\\loras\\x.safetensors") the weight is 1.0.
    """
    spec = (spec or "").strip()
    if not spec:
        raise UsageError("empty --lora value; expected FILE or FILE:WEIGHT")
    head, sep, tail = spec.rpartition(":")
    if not sep or _is_drive(head) or "/" in tail or "\\" in tail:
        path, weight = spec, 1.0
    else:
        if not head:
            raise UsageError(f"bad --lora {spec!r}: no file before ':'; expected FILE or FILE:WEIGHT")
        try:
            weight = float(tail)
        except ValueError:
            raise UsageError(f"bad --lora {spec!r}: weight {tail!r} is not a number; expected FILE:WEIGHT, "
                             "e.g. my_lora.safetensors:0.8") from None
        if not math.isfinite(weight):
            raise UsageError(f"bad --lora {spec!r}: weight must be a finite number")
        path = head
    return LoraSpec(Path(path), weight)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("generate", help="generate one image with a model and LoRAs (offline, deterministic)",
                       description="Generate one txt2img image with a Stable Diffusion model (SD1/SD2/SDXL single "
                                   "file or diffusers folder) and optional kohya LoRA files.")
    p.add_argument("--model", required=True, type=Path, help="checkpoint (.safetensors/.ckpt) or diffusers folder")
    p.add_argument("--lora", action="append", default=[], metavar="FILE[:WEIGHT]",
                   help="LoRA file and weight (default 1.0); repeat for several. Split on the last ':'.")
    p.add_argument("--prompt", required=True, help="prompt")
    p.add_argument("--negative", default=None, help="negative prompt")
    p.add_argument("--seed", type=int, default=-1, help="seed; -1 (default) picks one and prints it")
    p.add_argument("--steps", type=int, default=DEFAULT_STEPS, help=f"sampling steps (default {DEFAULT_STEPS})")
    p.add_argument("--sampler", default=DEFAULT_SAMPLER,
                   help=f"A1111 or sd-scripts sampler name (default {DEFAULT_SAMPLER!r}), e.g. 'DPM++ 2M Karras', "
                        "'UniPC', 'euler_a'")
    p.add_argument("--width", type=int, default=None, help="multiple of 8 (default: the model's native size)")
    p.add_argument("--height", type=int, default=None, help="multiple of 8 (default: the model's native size)")
    p.add_argument("--cfg", type=float, default=DEFAULT_CFG, help=f"CFG scale (default {DEFAULT_CFG})")
    p.add_argument("--out", required=True, type=Path, help="PNG file to write")
    p.set_defaults(func=run)


def _usage_error(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return EXIT_USAGE


def _check_args(args) -> tuple[list[LoraSpec], str]:
    from .samplers import sampler_info

    try:
        sampler = sampler_info(args.sampler).name
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    loras = [parse_lora_spec(s) for s in args.lora]
    if not Path(args.model).exists():
        raise UsageError(f"--model {args.model}: no such file or folder")
    for spec in loras:
        if not spec.path.is_file():
            raise UsageError(f"--lora {spec.path}: no such file")
    for label in ("width", "height"):
        value = getattr(args, label)
        if value is not None and (value < 64 or value % 8):
            raise UsageError(f"--{label} {value}: must be a multiple of 8, at least 64")
    if args.steps < 1 or args.steps > 1000:
        raise UsageError(f"--steps {args.steps}: must be between 1 and 1000")
    if not math.isfinite(args.cfg) or args.cfg < 0:
        raise UsageError(f"--cfg {args.cfg}: must be a number >= 0")
    if args.seed < -1 or args.seed >= 2 ** 63:
        raise UsageError(f"--seed {args.seed}: must be -1 (random) or 0 .. 2**63-1")
    if str(args.out).endswith(("/", os.sep)) or Path(args.out).is_dir():
        raise UsageError(f"--out {args.out}: is a folder; give a .png file name")
    return loras, sampler


def build_infotext(prompt: str, negative: str | None, steps: int, sampler: str, cfg: float, seed: int,
                   width: int, height: int, model: str | None = None, loras=()) -> str:
    """A1111's PNG "parameters" text; LoRAs become <lora:name:weight> tags at the end of the prompt."""
    tags = "".join(f" <lora:{Path(p).stem}:{w:g}>" for p, w in loras)
    lines = [prompt + tags]
    if negative:
        lines.append(f"Negative prompt: {negative}")
    fields = [f"Steps: {steps}", f"Sampler: {sampler}", f"CFG scale: {cfg:g}", f"Seed: {seed}",
              f"Size: {width}x{height}"]
    if model:
        fields.append(f"Model: {model}")
    lines.append(", ".join(fields))
    return "\n".join(lines)


def _write_png_atomic(image, out: Path, infotext: str) -> None:
    from PIL import PngImagePlugin

    out.parent.mkdir(parents=True, exist_ok=True)
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", infotext)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as fh:
            image.save(fh, format="PNG", pnginfo=info)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            tmp.unlink()


def run(args: argparse.Namespace) -> int:
    try:
        loras, sampler = _check_args(args)
    except UsageError as exc:
        return _usage_error(str(exc))
    seed = args.seed if args.seed >= 0 else random.randrange(2 ** 32)
    start = time.perf_counter()
    try:
        from .pipeline import apply_loras, generate, load_model_pipeline

        pipe = load_model_pipeline(args.model, sampler)
        if loras:
            apply_loras(pipe, [(s.path, s.weight) for s in loras])
        image = generate(pipe, args.prompt, args.negative, seed, args.steps, args.width, args.height, args.cfg)
        infotext = build_infotext(args.prompt, args.negative, args.steps, sampler, args.cfg, seed,
                                  image.width, image.height, Path(args.model).stem,
                                  [(s.path, s.weight) for s in loras])
        _write_png_atomic(image, Path(args.out), infotext)
    except Exception as exc:  # model/LoRA load failures, OOM...: one clear line, no traceback
        print(f"error: generation failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(f"wrote {args.out} ({image.width}x{image.height}, seed {seed}, {sampler}, {args.steps} steps, "
          f"{time.perf_counter() - start:.1f} s)")
    return EXIT_OK

"""sd-scripts sample-prompt files: `prompt --n negative --w 512 --h 512 --d 42 --l 7.5 --s 20 --ss euler_a`.

Parsing follows sd-scripts' `library/train_util.line_to_prompt_dict` / `load_prompts` /
`sample_image_inference`:

* a line is split on " --"; the first piece is the prompt, every later piece is an option;
* options (case-insensitive): `--w`/`--h` size, `--d` seed, `--l` CFG scale, `--s` steps,
  `--n` negative prompt (the rest of that piece), `--ss` sampler for this prompt; the FLUX/SD3
  and ControlNet options `--g`, `--cn`, `--ctr`, `--rcfg`, `--fs` are read but unused here;
* an option whose value does not parse is ignored, as in sd-scripts (it only logs it); so is an
  unknown option. Both are listed in `SamplePrompt.ignored` so a UI can warn;
* defaults: 512x512, 30 steps (clamped to 1..1000), CFG 7.5, seed None (random), no negative
  prompt, sampler None (the run's `--sample_sampler`);
* width and height are rounded down to a multiple of 8, with 64 as the minimum.

Files: `.txt` (one prompt per line; blank lines and lines starting with "#" are skipped),
`.toml` (a `[prompt]` table of defaults plus `[[prompt.subset]]` entries) and `.json` (a list of
lines or of dicts), the same three formats sd-scripts' `--sample_prompts` takes. TOML/JSON dicts
use sd-scripts' keys: prompt, negative_prompt, width, height, seed, sample_steps, scale,
sample_sampler.

Two deliberate differences from sd-scripts: a line whose first non-blank character is "#" is a
comment (sd-scripts only checks the very first character), and a TOML subset may override a
key of the `[prompt]` table (sd-scripts raises a TypeError on that).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "DEFAULT_CFG_SCALE",
    "DEFAULT_SIZE",
    "DEFAULT_STEPS",
    "PromptFileError",
    "SamplePrompt",
    "load_prompt_file",
    "parse_prompt_dict",
    "parse_prompt_line",
    "parse_prompt_text",
]

DEFAULT_SIZE = 512
DEFAULT_STEPS = 30
DEFAULT_CFG_SCALE = 7.5
MIN_SIZE = 64
MAX_STEPS = 1000


class PromptFileError(ValueError):
    """A prompt file that cannot be read at all (bad TOML/JSON, wrong structure, unknown type)."""


@dataclass(frozen=True)
class SamplePrompt:
    prompt: str
    negative: str | None = None
    width: int = DEFAULT_SIZE
    height: int = DEFAULT_SIZE
    seed: int | None = None
    cfg_scale: float = DEFAULT_CFG_SCALE
    steps: int = DEFAULT_STEPS
    sampler: str | None = None
    ignored: tuple[str, ...] = field(default=(), compare=False)  # options that were skipped


def _size(value: int) -> int:
    return max(MIN_SIZE, value - value % 8)


def _steps(value: int) -> int:
    return max(1, min(MAX_STEPS, value))


# (option regex, field, converter) in sd-scripts' order: "s" (steps) is tried before "ss".
_OPTIONS = (
    (re.compile(r"w (\d+)", re.IGNORECASE), "width", int),
    (re.compile(r"h (\d+)", re.IGNORECASE), "height", int),
    (re.compile(r"d (\d+)", re.IGNORECASE), "seed", int),
    (re.compile(r"s (\d+)", re.IGNORECASE), "steps", int),
    (re.compile(r"l ([\d.]+)", re.IGNORECASE), "cfg_scale", float),
    (re.compile(r"g ([\d.]+)", re.IGNORECASE), None, float),      # FLUX guidance: unused
    (re.compile(r"n (.+)", re.IGNORECASE), "negative", str),
    (re.compile(r"ss (.+)", re.IGNORECASE), "sampler", str),
    (re.compile(r"cn (.+)", re.IGNORECASE), None, str),           # ControlNet image: unused
    (re.compile(r"ctr (.+)", re.IGNORECASE), None, float),        # Lumina options: unused
    (re.compile(r"rcfg (.+)", re.IGNORECASE), None, float),
    (re.compile(r"fs (.+)", re.IGNORECASE), None, str),
)


def parse_prompt_line(line: str) -> SamplePrompt:
    """Parse one sd-scripts prompt line (not a comment/blank line: see `parse_prompt_text`)."""
    pieces = line.strip().split(" --")
    values: dict = {}
    ignored: list[str] = []
    for piece in pieces[1:]:
        if not piece.strip():
            continue
        for regex, name, convert in _OPTIONS:
            m = regex.match(piece)
            if not m:
                continue
            try:
                value = convert(m.group(1).strip())
            except ValueError:
                ignored.append("--" + piece.strip())
                break
            if name is None:
                ignored.append("--" + piece.strip())
            else:
                values[name] = value
            break
        else:
            ignored.append("--" + piece.strip())
    return SamplePrompt(
        prompt=pieces[0].strip(),
        negative=values.get("negative"),
        width=_size(values.get("width", DEFAULT_SIZE)),
        height=_size(values.get("height", DEFAULT_SIZE)),
        seed=values.get("seed"),
        cfg_scale=values.get("cfg_scale", DEFAULT_CFG_SCALE),
        steps=_steps(values.get("steps", DEFAULT_STEPS)),
        sampler=values.get("sampler"),
        ignored=tuple(ignored),
    )


def parse_prompt_text(text: str) -> list[SamplePrompt]:
    """Parse the contents of a .txt prompt file: one prompt per line, "#" comments, blanks skipped."""
    out = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        out.append(parse_prompt_line(line))
    return out


def _opt(d: dict, key: str, convert, where: str):
    value = d.get(key)
    if value is None:
        return None
    try:
        if convert is int and isinstance(value, float) and not value.is_integer():
            raise ValueError
        return convert(value)
    except (TypeError, ValueError):
        raise PromptFileError(f"{where}: {key} = {value!r} is not a valid {convert.__name__}") from None


def parse_prompt_dict(d: dict, where: str = "prompt") -> SamplePrompt:
    """A TOML/JSON prompt entry with sd-scripts' keys (prompt, negative_prompt, width, ...)."""
    if not isinstance(d, dict):
        raise PromptFileError(f"{where}: expected a table/object, got {type(d).__name__}")
    prompt = d.get("prompt")
    if not isinstance(prompt, str):
        raise PromptFileError(f"{where}: 'prompt' must be a string")
    width = _opt(d, "width", int, where)
    height = _opt(d, "height", int, where)
    steps = _opt(d, "sample_steps", int, where)
    scale = _opt(d, "scale", float, where)
    negative = d.get("negative_prompt")
    sampler = d.get("sample_sampler")
    return SamplePrompt(
        prompt=prompt,
        negative=None if negative is None else str(negative),
        width=_size(DEFAULT_SIZE if width is None else width),
        height=_size(DEFAULT_SIZE if height is None else height),
        seed=_opt(d, "seed", int, where),
        cfg_scale=DEFAULT_CFG_SCALE if scale is None else scale,
        steps=_steps(DEFAULT_STEPS if steps is None else steps),
        sampler=None if sampler is None else str(sampler),
    )


def load_prompt_file(path) -> list[SamplePrompt]:
    """Read a .txt, .toml or .json sample prompt file (sd-scripts' `--sample_prompts`)."""
    p = Path(path)
    suffix = p.suffix.lower()
    text = p.read_text(encoding="utf-8-sig")
    if suffix == ".toml":
        from lib_lora_trainer import toml_read as tomllib

        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise PromptFileError(f"{p}: {exc}") from None
        base = data.get("prompt")
        if not isinstance(base, dict):
            raise PromptFileError(f"{p}: expected a [prompt] table with [[prompt.subset]] entries")
        subsets = base.get("subset", [])
        if not isinstance(subsets, list):
            raise PromptFileError(f"{p}: prompt.subset must be an array of tables")
        defaults = {k: v for k, v in base.items() if k != "subset"}
        out = []
        for i, sub in enumerate(subsets):
            where = f"{p} prompt.subset[{i}]"
            if not isinstance(sub, dict):
                raise PromptFileError(f"{where}: expected a table")
            out.append(parse_prompt_dict({**defaults, **sub}, where))
        return out
    if suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise PromptFileError(f"{p}: {exc}") from None
        if not isinstance(data, list):
            raise PromptFileError(f"{p}: expected a JSON list of prompt lines or objects")
        return [parse_prompt_line(item) if isinstance(item, str) else parse_prompt_dict(item, f"{p}[{i}]")
                for i, item in enumerate(data)]
    if suffix in (".txt", ""):
        return parse_prompt_text(text)
    raise PromptFileError(f"{p}: unsupported prompt file type {suffix!r} (use .txt, .toml or .json)")

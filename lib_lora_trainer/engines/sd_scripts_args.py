"""Which run.toml keys an sd-scripts checkout accepts, asked of the checkout itself.

sd-scripts reads `--config_file` into the argparse namespace and never looks at a key its parser
does not define: such a key is ignored silently (kohya_ss users trained "LoRA+" runs that were
plain LoRA for months). So before a launch we build the checkout's own parser in its own Python
(sd_scripts_probe.py), cache the answer per checkout content, adapt the few keys that moved
between versions, and refuse any key that would still be ignored, naming it and the version.
Standard library only (runs inside the web UI's process).
"""

from __future__ import annotations

import difflib
import hashlib
import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from lib_lora_trainer import atomic
from lib_lora_trainer.toml_read import flatten_sections as flatten

PROBE = Path(__file__).with_name("sd_scripts_probe.py")
PROBE_TIMEOUT_S = 300.0   # importing torch + diffusers on a cold disk
# Keys the command line passes, never the TOML: always accepted.
COMMAND_LINE_KEYS = frozenset({"config_file", "dataset_config"})
# Changes how the log looks, nothing else: dropped with a note where a version lacks it.
COSMETIC_KEYS = frozenset({"console_log_simple", "console_log_level", "console_log_file"})
# LoRA+ ratios: top-level options in some versions, `network_args` of networks.lora in all of them.
NETWORK_ARGS_KEYS = ("loraplus_lr_ratio", "loraplus_unet_lr_ratio", "loraplus_text_encoder_lr_ratio")
# The files that define the arguments (plus library/, where newer releases moved them).
_FINGERPRINT_GLOBS = ("*.py", "library/**/*.py")


class SdScriptsArgsError(RuntimeError):
    """The checkout would ignore keys of the run, or could not be asked; the message says what to do."""


@dataclass(frozen=True)
class AcceptedArgs:
    script: str
    source: str                    # where the parser came from, e.g. "train_network.setup_parser"
    args: Mapping[str, dict]       # dest -> {"options", "kind", "nargs", "type", "choices", "default"}

    def __contains__(self, key: str) -> bool:
        return key in self.args or key in COMMAND_LINE_KEYS


def fingerprint(checkout: Path) -> str:
    """A hash of the checkout's Python sources: the cache key (a commit, plus any local edit)."""
    digest = hashlib.sha256()
    for pattern in _FINGERPRINT_GLOBS:
        for path in sorted(checkout.glob(pattern)):
            if "venv" in path.relative_to(checkout).parts[:1]:
                continue
            digest.update(str(path.relative_to(checkout)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:20]


def accepted_args(checkout: Path, python: str, script: str, env: Mapping[str, str], cache_dir: Path) -> AcceptedArgs:
    """The arguments `script` (e.g. "train_network") of this checkout accepts; cached per content."""
    cache = Path(cache_dir) / f"{fingerprint(checkout)}-{script}.json"
    try:
        data = json.loads(cache.read_text(encoding="utf-8"))
        return AcceptedArgs(data["script"], data["source"], data["args"])
    except (OSError, ValueError, KeyError):
        pass  # not asked yet, or an unreadable cache: ask again
    data = _probe(checkout, python, script, env)
    cache.parent.mkdir(parents=True, exist_ok=True)
    atomic.write_text(cache, json.dumps(data))
    return AcceptedArgs(data["script"], data["source"], data["args"])


def _probe(checkout: Path, python: str, script: str, env: Mapping[str, str]) -> dict:
    from .sd_scripts_probe import MARKER

    try:
        done = subprocess.run([python, str(PROBE), script], cwd=str(checkout), env=dict(env), capture_output=True, text=True,
                              errors="replace", timeout=PROBE_TIMEOUT_S, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SdScriptsArgsError(f"could not ask {checkout} for its arguments ({exc}); check the sd-scripts "
                                 f"Python {python}") from None
    for line in done.stdout.splitlines():
        if line.startswith(MARKER):
            return json.loads(line[len(MARKER):])
    tail = " | ".join((done.stderr or done.stdout).strip().splitlines()[-4:]) or "no output"
    raise SdScriptsArgsError(f"{script}.py of {checkout} did not build its argument parser with {python} "
                             f"(exit code {done.returncode}): {tail}")


def adapt(run: Mapping[str, Any], accepted: AcceptedArgs) -> tuple[dict[str, Any], list[str]]:
    """The run with the keys this version spells differently moved, and what was changed."""
    out, notes = flatten(run), []
    for key in sorted(COSMETIC_KEYS & set(out)):
        if key not in accepted:
            del out[key]
            notes.append(f"{key} dropped: this sd-scripts has no such option (it only changes the log's look)")
    if out.get("network_module", "networks.lora") == "networks.lora":
        for key in NETWORK_ARGS_KEYS:
            if key in out and key not in accepted:
                value = out.pop(key)
                out["network_args"] = [*out.get("network_args", []), f"{key}={value}"]
                notes.append(f"{key} moved into network_args: this sd-scripts reads it there")
    return out, notes


def ignored_keys(run: Mapping[str, Any], accepted: AcceptedArgs) -> list[str]:
    return sorted(k for k in flatten(run) if k not in accepted)


def unchecked_values(run: Mapping[str, Any], accepted: AcceptedArgs) -> list[str]:
    """Values the parser would refuse on a command line, which a TOML value skips (sd-scripts puts
    TOML values into the namespace as they are: no type conversion, no choices check)."""
    problems = []
    for key, value in flatten(run).items():
        spec = accepted.args.get(key)
        if spec is None or value is None:
            continue
        kind, wanted, choices = spec.get("kind", ""), spec.get("type"), spec.get("choices")
        if kind in ("StoreTrueAction", "StoreFalseAction") and not isinstance(value, bool):
            problems.append(f"`{key}` = {value!r} (a switch: true or false)")
        elif wanted in ("int", "float") and (isinstance(value, (str, bool)) or
                                             (wanted == "int" and isinstance(value, float))):
            problems.append(f"`{key}` = {value!r} (a number: {wanted})")
        elif wanted == "str" and spec.get("nargs") is None and not isinstance(value, str):
            problems.append(f"`{key}` = {value!r} (text: write it in quotes)")  # e.g. resolution = 512
        elif choices and not isinstance(value, (list, dict)) and value not in choices:
            problems.append(f"`{key}` = {value!r} (one of: {', '.join(map(str, choices))})")
    return problems


def ignored_message(keys: list[str], accepted: AcceptedArgs, version: str, checkout: Path, toml: Path) -> str:
    named = []
    for key in keys:
        close = difflib.get_close_matches(key, list(accepted.args), n=1, cutoff=0.8)
        named.append(f"`{key}`" + (f" (did you mean `{close[0]}`?)" if close else ""))
    return (f"sd-scripts {version} at {checkout} does not know {', '.join(named)} in {toml}: its "
            f"{accepted.script}.py would ignore {'it' if len(keys) == 1 else 'them'} silently and train without "
            f"{'that setting' if len(keys) == 1 else 'those settings'}. Remove {'it' if len(keys) == 1 else 'them'}, "
            f"or use an sd-scripts version that has {'it' if len(keys) == 1 else 'them'} "
            f"(python -m lib_lora_trainer engines install --version TAG).")

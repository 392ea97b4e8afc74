"""The `ss_*` metadata of a LoRA read back as TrainingConfig fields (reproduce.py assembles them).

Every metadata value is `str()` of what the trainer held (metadata.py), so "None" means unset,
"True"/"False" are booleans, tuples and lists are Python literals and nested data is JSON. Keys
with no TrainingConfig field are reported when their value differs from sd-scripts' default (a
default value changes nothing, so it needs no field).
"""

from __future__ import annotations

import ast
import json
import math
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from lib_lora_trainer.config.coerce import coerce
from lib_lora_trainer.config.errors import ConfigError
from lib_lora_trainer.config.training_config import OPTIMIZERS, TrainingConfig


@dataclass
class NotRecovered:
    field: str          # a TrainingConfig field, "dataset", "captions", or the metadata key with no field
    reason: str
    key: str | None = None      # the metadata key it came from
    value: str | None = None    # its raw value

    def to_dict(self) -> dict:
        return {"field": self.field, "reason": self.reason, "key": self.key, "value": self.value}


@dataclass
class Recovery:
    """What reading the metadata gave: field values (each accepted by TrainingConfig on its own),
    where each came from, what could not be carried over, and notes."""
    values: dict[str, Any] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)
    missing: list[NotRecovered] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def set(self, name: str, value: Any, source: str, raw: str | None = None) -> bool:
        """Keep `value` for field `name` if TrainingConfig accepts it; else record why not."""
        try:
            value = coerce(name, value, TrainingConfig.field_spec(name))
        except (ValueError, ArithmeticError, TypeError) as exc:   # ConfigError; 10**400 overflows a float
            self.miss(name, f"TrainingConfig does not accept it: {exc}", source, raw if raw is not None else value)
            return False
        self.values[name] = value
        self.sources[name] = source
        return True

    def miss(self, name: str, reason: str, key: str | None = None, value: Any = None) -> None:
        self.missing.append(NotRecovered(name, reason, key, None if value is None else str(value)[:300]))


# ---- value parsing --------------------------------------------------------------------------------------

def raw(md: Mapping[str, str], key: str) -> str | None:
    """The metadata string, or None when absent, empty or "None" (unset)."""
    value = md.get(key)
    if value is None:
        return None
    value = str(value).strip()
    return None if value in ("", "None", "null") else value


def as_number(text: str) -> int | float:
    """"4" -> 4, "1.0" -> 1.0, "1e-4" -> 0.0001 (the type the trainer held is kept)."""
    try:
        return int(text)
    except ValueError:
        value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text!r} is not a finite number")
    return value


def as_bool(text: str) -> bool:
    if text in ("True", "true", "1"):
        return True
    if text in ("False", "false", "0"):
        return False
    raise ValueError(f"{text!r} is not True/False")


def literal(text: str) -> Any:
    """A Python literal (sd-scripts' str of a tuple/list/dict) or JSON; the text itself otherwise."""
    for parse in (ast.literal_eval, json.loads):
        try:
            return parse(text)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            continue
    return text


def json_value(md: Mapping[str, str], key: str, out: Recovery) -> Any:
    text = raw(md, key)
    if text is None:
        return None
    try:
        return json.loads(text)
    except (ValueError, RecursionError):   # JSONDecodeError, or a number of more than 4300 digits
        out.notes.append(f"{key} is not valid JSON; it was ignored.")
        return None


# ---- plain keys -----------------------------------------------------------------------------------------

# metadata key -> (TrainingConfig field, parser). An unset value ("None") sets an optional field to None.
SIMPLE: dict[str, tuple[str, Callable[[str], Any]]] = {
    "ss_learning_rate": ("learning_rate", as_number), "ss_unet_lr": ("unet_lr", as_number),
    "ss_lr_scheduler": ("lr_scheduler", str), "ss_lr_warmup_steps": ("lr_warmup", as_number),
    "ss_gradient_accumulation_steps": ("grad_accum", as_number), "ss_mixed_precision": ("mixed_precision", str),
    "ss_seed": ("seed", as_number), "ss_clip_skip": ("clip_skip", as_number),
    "ss_noise_offset": ("noise_offset", as_number), "ss_min_snr_gamma": ("min_snr_gamma", as_number),
    "ss_max_grad_norm": ("max_grad_norm", as_number), "ss_network_alpha": ("network_alpha", as_number),
    "ss_network_dropout": ("network_dropout", as_number),
    "ss_caption_dropout_rate": ("caption_dropout_rate", as_number),
    "ss_gradient_checkpointing": ("gradient_checkpointing", as_bool), "ss_cache_latents": ("cache_latents", as_bool),
}
# Only in classic folder-layout runs (with a dataset config they live in ss_datasets).
FOLDER_LAYOUT: dict[str, tuple[str, Callable[[str], Any]]] = {
    "ss_batch_size_per_device": ("batch_size", as_number), "ss_enable_bucket": ("enable_bucket", as_bool),
    "ss_min_bucket_reso": ("min_bucket_reso", as_number), "ss_max_bucket_reso": ("max_bucket_reso", as_number),
    "ss_bucket_no_upscale": ("bucket_no_upscale", as_bool), "ss_shuffle_caption": ("shuffle_caption", as_bool),
    "ss_keep_tokens": ("keep_tokens", as_number), "ss_flip_aug": ("flip_aug", as_bool),
}
# Keys with no TrainingConfig field: the values that change nothing (sd-scripts' defaults).
NO_FIELD: dict[str, tuple[str, ...]] = {
    "ss_full_fp16": ("False",), "ss_fp8_base": ("False",), "ss_fp8_base_unet": ("False",),
    "ss_max_token_length": ("None", "75"), "ss_multires_noise_iterations": ("None", "0"),
    "ss_adaptive_noise_scale": ("None",), "ss_zero_terminal_snr": ("False",),
    "ss_caption_dropout_every_n_epochs": ("0", "None"), "ss_caption_tag_dropout_rate": ("0.0", "0", "None"),
    "ss_face_crop_aug_range": ("None",), "ss_prior_loss_weight": ("1.0", "1"), "ss_scale_weight_norms": ("None",),
    "ss_ip_noise_gamma": ("None",), "ss_debiased_estimation": ("False",),
    "ss_noise_offset_random_strength": ("False",), "ss_ip_noise_gamma_random_strength": ("False",),
    "ss_loss_type": ("l2",), "ss_validation_split": ("0.0", "0", "None"), "ss_color_aug": ("False",),
    "ss_random_crop": ("False",), "ss_num_reg_images": ("0",), "ss_resize_interpolation": ("None",),
    "ss_vae_name": (), "modelspec.timestep_range": (),
}


def simple_keys(md: Mapping[str, str], out: Recovery, folder_layout: bool) -> None:
    table = {**SIMPLE, **(FOLDER_LAYOUT if folder_layout else {})}
    for key, (name, parse) in table.items():
        if key not in md:
            continue
        text = raw(md, key)
        if text is None:
            if TrainingConfig.field_spec(name).optional:
                out.set(name, None, key, md.get(key))
            continue
        try:
            value = parse(text)
        except ValueError:
            out.miss(name, f"{text[:80]!r} is not a value of this field's type", key, text)
            continue
        out.set(name, value, key, text)
    for key, defaults in NO_FIELD.items():
        if key in md and md[key].strip() not in defaults:
            instead = f"sd-scripts' default {defaults[0]}" if defaults else "none (the base model's own)"
            out.miss(key, f"TrainingConfig has no field for it; a new run uses {instead}", key, md[key])


def adafactor_schedule(md: Mapping[str, str], out: Recovery) -> None:
    """Adafactor with relative_step: sd-scripts records lr_scheduler "adafactor:<initial lr>" and
    learning_rate None (train_util.get_optimizer rewrites both before the metadata is made)."""
    text = raw(md, "ss_lr_scheduler") or ""
    if not text.startswith("adafactor:"):
        return
    out.missing = [m for m in out.missing if m.field != "lr_scheduler"]
    out.set("lr_scheduler", "adafactor", "ss_lr_scheduler", text)
    if out.values.get("learning_rate") is None:
        try:
            out.set("learning_rate", as_number(text.partition(":")[2]), "ss_lr_scheduler", text)
        except ValueError:
            pass


def text_encoder_lr(md: Mapping[str, str], out: Recovery) -> None:
    """sd-scripts records a float, or the list it was given (one per text encoder)."""
    text = raw(md, "ss_text_encoder_lr")
    if "ss_text_encoder_lr" not in md:
        return
    value = None if text is None else literal(text)
    if isinstance(value, (list, tuple)):
        if any(v != value[0] for v in value):
            out.miss("text_encoder_lr", f"one learning rate per text encoder ({text}); TrainingConfig has one "
                                        f"for both: the first is used", "ss_text_encoder_lr", text)
        value = value[0] if value else None
    out.set("text_encoder_lr", value, "ss_text_encoder_lr", text)


# ---- optimizer --------------------------------------------------------------------------------------------

def split_args(text: str) -> list[str]:
    """"a=1,betas=(0.9, 0.99),c='x,y'" -> ["a=1", "betas=(0.9, 0.99)", "c='x,y'"]."""
    parts, depth, quote, start = [], 0, "", 0
    for i, ch in enumerate(text):
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    merged: list[str] = []
    for part in parts:   # a comma inside an unquoted value: glue it back to the previous argument
        if merged and not re.match(r"\s*[A-Za-z_]\w*\s*=", part):
            merged[-1] += "," + part
        else:
            merged.append(part)
    return [p.strip() for p in merged if p.strip()]


def optimizer(md: Mapping[str, str], out: Recovery) -> None:
    """"torch.optim.adamw.AdamW" / "bitsandbytes.optim.adamw.AdamW8bit(weight_decay=0.1)" -> our
    optimizer name and optimizer_args."""
    text = raw(md, "ss_optimizer")
    if text is None:
        return
    path, _, rest = text.partition("(")
    cls = path.strip().rsplit(".", 1)[-1]
    names = {o.lower(): o for o in OPTIMIZERS}
    if cls.lower() not in names:
        out.miss("optimizer", f"optimizer {cls!r} is not one TrainingConfig offers ({', '.join(OPTIMIZERS)})",
                 "ss_optimizer", text)
        return
    out.set("optimizer", names[cls.lower()], "ss_optimizer", text)
    args: dict[str, Any] = {}
    for item in split_args(rest[:-1] if rest.endswith(")") else rest):
        key, _, value = item.partition("=")
        key = key.strip()
        parsed = literal(value.strip())
        if isinstance(parsed, tuple):
            parsed = list(parsed)
        try:
            args.update(coerce("optimizer_args", {key: parsed}, TrainingConfig.field_spec("optimizer_args")))
        except ConfigError as exc:
            out.miss("optimizer_args", f"optimizer argument {key}={value.strip()[:80]}: {exc}", "ss_optimizer", item)
    out.set("optimizer_args", args, "ss_optimizer", text)


# ---- network ----------------------------------------------------------------------------------------------

def network(md: Mapping[str, str], out: Recovery) -> None:
    module = raw(md, "ss_network_module")
    if module is not None and module != "networks.lora":
        out.miss("network_module", f"the LoRA was made by {module!r}; TrainingConfig trains networks.lora only "
                                   "(the other settings are kept, continuing from its weights is not possible)",
                 "ss_network_module", module)
    dim = raw(md, "ss_network_dim")
    if dim is not None:
        try:
            out.set("network_dim", as_number(dim), "ss_network_dim", dim)
        except ValueError:
            out.notes.append(f"ss_network_dim is {dim[:40]!r} (e.g. a dynamically resized LoRA); the rank is "
                             "read from the tensors instead.")
    args = json_value(md, "ss_network_args", out)
    if not isinstance(args, dict):
        return
    for key, value in args.items():
        if key == "dropout":   # the same as ss_network_dropout (sd-scripts passes it through both)
            continue
        if key in ("conv_dim", "conv_alpha"):
            try:
                number = as_number(str(value))
            except ValueError:
                out.miss(key, f"{value!r} is not a number", "ss_network_args", value)
                continue
            out.set(key, number, "ss_network_args", value)
        else:
            out.miss(f"network_args.{key}", "TrainingConfig has no field for this network argument",
                     "ss_network_args", f"{key}={value}")


def _whole(md: Mapping[str, str], key: str) -> int | None:
    text = raw(md, key)
    return int(text) if text is not None and text.isdigit() and len(text) < 19 else None


def steps_and_epochs(md: Mapping[str, str], out: Recovery) -> None:
    """An epoch-length run keeps `epochs` (so a changed dataset scales the run as it did); a run
    stopped by max_train_steps keeps the step count."""
    steps, epochs = _whole(md, "ss_max_train_steps"), _whole(md, "ss_num_epochs")
    batches = _whole(md, "ss_num_batches_per_epoch")
    accum = out.values.get("grad_accum", 1)
    if epochs is not None:
        out.set("epochs", epochs, "ss_num_epochs", md.get("ss_num_epochs"))
    whole_epochs = steps is not None and epochs is not None and batches is not None and \
        steps == epochs * -(-batches // accum)
    if steps is not None and not whole_epochs:
        out.set("max_train_steps", steps, "ss_max_train_steps", md.get("ss_max_train_steps"))
    elif steps is not None:
        out.set("max_train_steps", None, "ss_max_train_steps", md.get("ss_max_train_steps"))
    done = raw(md, "ss_steps")
    if done and steps is not None and done.isdigit() and len(done) < 19 and int(done) < steps:
        out.notes.append(f"This file was saved at step {done} of {steps} (an intermediate checkpoint); the "
                         f"reproduced run trains all {steps} steps.")

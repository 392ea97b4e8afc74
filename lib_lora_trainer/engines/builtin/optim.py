"""Optimizers and learning-rate schedules by sd-scripts' names."""

from __future__ import annotations

import ast

import torch

from .args import ArgsError, TrainArgs


def parse_optimizer_args(items: list | None) -> dict:
    """sd-scripts' optimizer_args: ["weight_decay=0.01", "betas=0.9,0.999"] -> python values."""
    out = {}
    for item in items or []:
        if not isinstance(item, str) or "=" not in item:
            raise ArgsError(f"optimizer_args: {item!r} must be 'key=value'.")
        key, value = (s.strip() for s in item.split("=", 1))
        try:
            parsed = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            parsed = value  # plain strings such as decouple=True work above; others stay text
        out[key] = tuple(parsed) if isinstance(parsed, list) else parsed
    return out


def optimizer_description(opt: torch.optim.Optimizer, kwargs: dict) -> str:
    """What sd-scripts writes into ss_optimizer: the class path, then the args in parentheses."""
    cls = type(opt)
    name = f"{cls.__module__}.{cls.__name__}"
    if kwargs:
        name += "(" + ",".join(f"{k}={v}" for k, v in kwargs.items()) + ")"
    return name


def make_optimizer(args: TrainArgs, param_groups: list[dict], lr: float, on_cuda: bool):
    kind = args.optimizer_name
    kwargs = parse_optimizer_args(args.optimizer_args)
    if kind == "adamw":
        opt = torch.optim.AdamW(param_groups, lr=lr, **kwargs)
    elif kind == "adamw8bit":
        if not on_cuda:
            raise ArgsError("optimizer_type AdamW8bit needs bitsandbytes and a CUDA GPU; use AdamW on this machine.")
        try:
            import bitsandbytes as bnb
        except ImportError:
            raise ArgsError("optimizer_type AdamW8bit needs the bitsandbytes package: pip install bitsandbytes, "
                            "or use AdamW.") from None
        opt = bnb.optim.AdamW8bit(param_groups, lr=lr, **kwargs)
    elif kind == "lion":
        opt = _import_optional("lion_pytorch", "Lion", "lion-pytorch")(param_groups, lr=lr, **kwargs)
    elif kind == "prodigy":
        opt = _import_optional("prodigyopt", "Prodigy", "prodigyopt")(param_groups, lr=lr, **kwargs)
    elif kind == "adafactor":
        from transformers.optimization import Adafactor
        kwargs.setdefault("scale_parameter", False)
        kwargs.setdefault("relative_step", False)
        kwargs.setdefault("warmup_init", False)
        opt = Adafactor(param_groups, lr=lr, **kwargs)
    else:  # args validation already refused anything else
        raise ArgsError(f"optimizer_type {args.optimizer_type!r} is not supported")
    return opt, kwargs


def _import_optional(module: str, cls: str, package: str):
    try:
        return getattr(__import__(module), cls)
    except ImportError:
        raise ArgsError(f"optimizer {cls} needs the {package} package: pip install {package}") from None


def make_scheduler(args: TrainArgs, optimizer, total_steps: int, warmup: int):
    from diffusers.optimization import get_scheduler

    name = args.lr_scheduler
    if name == "adafactor":
        if args.optimizer_name != "adafactor":
            raise ArgsError("lr_scheduler 'adafactor' works only with optimizer_type Adafactor.")
        name = "constant"  # we always run Adafactor with a fixed lr (relative_step=False)
    extra = {}
    if name == "cosine_with_restarts":
        extra["num_cycles"] = args.lr_scheduler_num_cycles
    elif name == "polynomial":
        extra["power"] = args.lr_scheduler_power
    if name == "constant":
        return get_scheduler(name, optimizer)
    return get_scheduler(name, optimizer, num_warmup_steps=warmup, num_training_steps=total_steps, **extra)

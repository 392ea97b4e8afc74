"""Optimizers and learning-rate schedules by sd-scripts' names."""

from __future__ import annotations

import torch

from . import logs
from .args import ArgsError, TrainArgs, adafactor_kwargs, parse_optimizer_args

__all__ = ["parse_optimizer_args", "optimizer_description", "make_optimizer", "make_scheduler"]


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
        opt, kwargs = _adafactor(args, param_groups, lr)
    else:  # args validation already refused anything else
        raise ArgsError(f"optimizer_type {args.optimizer_type!r} is not supported")
    return opt, kwargs


def _adafactor(args: TrainArgs, param_groups: list[dict], lr: float):
    """sd-scripts' Adafactor: with relative_step (the default) it picks its own step size, so the
    learning rates are dropped (transformers refuses lr with relative_step) and only logged."""
    from transformers.optimization import Adafactor

    kwargs = adafactor_kwargs(args)
    if not kwargs["relative_step"]:
        return Adafactor(param_groups, lr=lr, **kwargs), kwargs
    logs.say("relative_step is true: Adafactor sets its own step size")
    if lr:
        logs.say("WARNING: learning rate is used as initial_lr (logged only)")
    dropped = [group.pop("lr", None) for group in param_groups]  # every group, not just up to the first
    if any(x is not None for x in dropped):
        logs.say("WARNING: unet_lr and text_encoder_lr are ignored")
    if args.lr_scheduler != "adafactor":
        logs.say("use adafactor_scheduler")
    return Adafactor(param_groups, lr=None, **kwargs), kwargs


def _import_optional(module: str, cls: str, package: str):
    try:
        return getattr(__import__(module), cls)
    except ImportError:
        raise ArgsError(f"optimizer {cls} needs the {package} package: pip install {package}") from None


def make_scheduler(args: TrainArgs, optimizer, total_steps: int, warmup: int):
    from diffusers.optimization import get_scheduler

    if args.optimizer_name == "adafactor" and adafactor_kwargs(args)["relative_step"]:
        # sd-scripts replaces any lr_scheduler by "adafactor:<learning_rate>" here (args.py refused a warmup)
        from transformers.optimization import AdafactorSchedule
        return AdafactorSchedule(optimizer, float(args.learning_rate))
    name = args.lr_scheduler  # "adafactor" without relative_step was refused in args.py
    extra = {}
    if name == "cosine_with_restarts":
        extra["num_cycles"] = args.lr_scheduler_num_cycles
    elif name == "polynomial":
        extra["power"] = args.lr_scheduler_power
    if name == "constant":
        return get_scheduler(name, optimizer)
    return get_scheduler(name, optimizer, num_warmup_steps=warmup, num_training_steps=total_steps, **extra)

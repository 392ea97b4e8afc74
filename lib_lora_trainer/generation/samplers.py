"""Sampler names (A1111 and sd-scripts) -> diffusers schedulers.

`make_scheduler(name, base_scheduler_config)` builds the scheduler from the model's own scheduler
config (`from_config`), so the noise schedule (betas, number of train timesteps) and the
`prediction_type` (epsilon or v_prediction) always come from the model; only the sampling
algorithm and its sigma/timestep spacing come from the name.

Names are case-insensitive; runs of spaces count as one space.

A1111 names follow A1111 v1.10 with its "Schedule type" left at "Automatic":

========================  ====================================================================
A1111 name                diffusers scheduler (options)
========================  ====================================================================
Euler a                   EulerAncestralDiscreteScheduler
Euler                     EulerDiscreteScheduler
LMS                       LMSDiscreteScheduler (see "LMS without scipy" below)
Heun                      HeunDiscreteScheduler
DPM2                      KDPM2DiscreteScheduler, Karras sigmas (A1111's automatic schedule)
DPM2 a                    KDPM2AncestralDiscreteScheduler, Karras sigmas
DPM++ 2M                  DPMSolverMultistepScheduler(dpmsolver++, order 2), Karras sigmas
DPM++ 2M SDE              DPMSolverMultistepScheduler(sde-dpmsolver++, order 2), exponential
                          sigmas (A1111's automatic schedule for it)
DPM++ SDE                 DPMSolverSDEScheduler when `torchsde` imports, else the stand-in
                          DPMSolverMultistepScheduler(sde-dpmsolver++, order 2); Karras sigmas
DDIM                      DDIMScheduler(clip_sample=False, set_alpha_to_one=False), leading
                          timesteps with steps_offset=1 (A1111/CompVis DDIM: 1, 1+1000//n, ...)
PLMS                      PNDMScheduler(skip_prk_steps=True), leading timesteps, steps_offset=1
UniPC                     UniPCMultistepScheduler(solver_order=3, solver_type="bh1",
                          final_sigmas_type="sigma_min"), linspace timesteps (A1111 defaults:
                          order 3, variant bh1, time_uniform, ending at t=1/N; diffusers' bh1
                          with the default final sigma 0 returns NaN images)
========================  ====================================================================

A schedule suffix picks the sigmas explicitly, as A1111's legacy names do: "<name> Karras",
"<name> Exponential" or "<name> Uniform" for Euler, LMS, Heun, DPM2, DPM2 a, DPM++ 2M,
DPM++ 2M SDE and DPM++ SDE (so "DPM++ 2M Karras", "DPM++ 2M SDE Karras", "DPM++ SDE Karras",
"LMS Karras", "DPM2 a Karras", "DPM++ 2M Uniform" ...). "Uniform" is k-diffusion's default
schedule (timesteps evenly spaced from 999 down to 0).

Note that since A1111 1.9 plain "DPM++ 2M" (schedule "Automatic") samples with Karras sigmas,
so "DPM++ 2M" and "DPM++ 2M Karras" are the same sampler here; before 1.9 the plain name meant
"DPM++ 2M Uniform".

Every k-diffusion style sampler uses ``timestep_spacing="linspace"`` whatever the model config
says (SD configs say "leading"): k-diffusion spaces its sigmas over the full 999..0 range, and
diffusers derives the Karras/exponential sigma range from the spaced timesteps, so "leading"
would shrink sigma_max.

sd-scripts ``--sample_sampler`` names follow ``library/train_util.get_my_scheduler``, which
builds each class with its defaults (no Karras sigmas anywhere):

==================  =========================================================================
sd-scripts name     diffusers scheduler
==================  =========================================================================
ddim                same as A1111 "DDIM" (names are case-insensitive). sd-scripts also turns on
                    clip_sample for DDIM; that clips latents to [-1, 1] and is not what A1111
                    shows, so it is left off here.
pndm                same as "PLMS". sd-scripts builds PNDM with its Runge-Kutta warm-up
                    (skip_prk_steps=False); diffusers 0.42 crashes on that below 4 steps, so
                    the warm-up is skipped here.
lms, k_lms          same as "LMS"
euler, k_euler      same as "Euler"
euler_a, k_euler_a  same as "Euler a"
heun                same as "Heun"
dpm_2, k_dpm_2      KDPM2DiscreteScheduler, uniform sigmas (unlike A1111's Karras "DPM2")
dpm_2_a, k_dpm_2_a  KDPM2AncestralDiscreteScheduler, uniform sigmas
dpmsolver           DPMSolverMultistepScheduler(algorithm_type="dpmsolver",
                    final_sigmas_type="sigma_min"; diffusers refuses "zero" for it)
dpmsolver++         DPMSolverMultistepScheduler(algorithm_type="dpmsolver++"), uniform sigmas
dpmsingle           DPMSolverSinglestepScheduler (dpmsolver++, order 2, lower_order_final=True,
                    which diffusers switches on anyway with a final sigma of 0), uniform sigmas
==================  =========================================================================

DPM++ SDE: A1111's sampler is a single-step second-order SDE solver (two model calls per step,
Brownian-tree noise). diffusers' DPMSolverSDEScheduler is the same algorithm but needs
`torchsde`; without it the stand-in is the multistep SDE solver (one model call per step, noise
from the generator), i.e. "DPM++ 2M SDE" with the same sigmas. `sampler_info(name).stand_in`
says which one a given environment gets.

LMS without scipy: diffusers' LMSDiscreteScheduler integrates its multistep coefficients with
scipy. When scipy is missing, a subclass computes the same integrals exactly (the integrand is a
polynomial) with numpy, so LMS works in the trainer's environment too.

Not reproduced (diffusers has no equivalent): A1111's "discard penultimate sigma" for DPM2 and
DPM2 a, and k-diffusion's log-sigma interpolation between integer timesteps (diffusers
interpolates sigma linearly; differences are tiny).
"""

from __future__ import annotations

import importlib
import inspect
import re
from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "A1111_SAMPLERS",
    "SD_SCRIPTS_SAMPLERS",
    "SCHEDULE_SUFFIXES",
    "SamplerInfo",
    "all_sampler_names",
    "has_torchsde",
    "make_scheduler",
    "sampler_info",
]

# Display names in A1111's order (v1.10 sd_samplers_kdiffusion / sd_samplers_timesteps).
A1111_SAMPLERS: tuple[str, ...] = (
    "DPM++ 2M", "DPM++ SDE", "DPM++ 2M SDE", "Euler a", "Euler", "LMS", "Heun", "DPM2", "DPM2 a",
    "DDIM", "PLMS", "UniPC",
)
SD_SCRIPTS_SAMPLERS: tuple[str, ...] = (
    "ddim", "pndm", "lms", "euler", "euler_a", "heun", "dpm_2", "dpm_2_a", "dpmsolver", "dpmsolver++",
    "dpmsingle", "k_lms", "k_euler", "k_euler_a", "k_dpm_2", "k_dpm_2_a",
)
SCHEDULE_SUFFIXES: tuple[str, ...] = ("Karras", "Exponential", "Uniform")

# What a scheduler config says about the MODEL (its noise schedule and parameterisation). The
# rest (solver order, Karras flags, clip_sample, final sigma...) belongs to the sampler the
# config was saved with (often PNDM or DPM++ in SD repos) and must not leak into another one.
MODEL_KEYS = ("num_train_timesteps", "beta_start", "beta_end", "beta_schedule", "trained_betas",
              "prediction_type", "rescale_betas_zero_snr", "timestep_spacing", "steps_offset")


@dataclass(frozen=True)
class _Base:
    scheduler: str              # diffusers class name
    options: dict = field(default_factory=dict)
    sigmas: str | None = None   # "karras" | "exponential" | "uniform"; None: timestep sampler
    schedules: bool = False     # accepts a " Karras"/" Exponential"/" Uniform" suffix


_DPMPP_2M = {"algorithm_type": "dpmsolver++", "solver_order": 2, "final_sigmas_type": "zero"}
_DPMPP_2M_SDE = {"algorithm_type": "sde-dpmsolver++", "solver_order": 2, "final_sigmas_type": "zero"}
_LEADING = {"timestep_spacing": "leading", "steps_offset": 1}

_A1111: dict[str, _Base] = {
    "Euler a": _Base("EulerAncestralDiscreteScheduler", sigmas="uniform"),
    "Euler": _Base("EulerDiscreteScheduler", sigmas="uniform", schedules=True),
    "LMS": _Base("LMSDiscreteScheduler", sigmas="uniform", schedules=True),
    "Heun": _Base("HeunDiscreteScheduler", sigmas="uniform", schedules=True),
    "DPM2": _Base("KDPM2DiscreteScheduler", sigmas="karras", schedules=True),
    "DPM2 a": _Base("KDPM2AncestralDiscreteScheduler", sigmas="karras", schedules=True),
    "DPM++ 2M": _Base("DPMSolverMultistepScheduler", _DPMPP_2M, sigmas="karras", schedules=True),
    "DPM++ 2M SDE": _Base("DPMSolverMultistepScheduler", _DPMPP_2M_SDE, sigmas="exponential", schedules=True),
    "DPM++ SDE": _Base("DPMSolverSDEScheduler", sigmas="karras", schedules=True),
    "DDIM": _Base("DDIMScheduler", {"clip_sample": False, "set_alpha_to_one": False, **_LEADING}),
    "PLMS": _Base("PNDMScheduler", {"skip_prk_steps": True, "set_alpha_to_one": False, **_LEADING}),
    "UniPC": _Base("UniPCMultistepScheduler", {"solver_order": 3, "solver_type": "bh1", "predict_x0": True,
                                               "lower_order_final": True, "timestep_spacing": "linspace",
                                               "final_sigmas_type": "sigma_min"}),
}

_SD_SCRIPTS: dict[str, str | _Base] = {
    "ddim": "DDIM",
    "pndm": "PLMS",
    "lms": "LMS",
    "k_lms": "LMS",
    "euler": "Euler",
    "k_euler": "Euler",
    "euler_a": "Euler a",
    "k_euler_a": "Euler a",
    "heun": "Heun",
    "dpm_2": _Base("KDPM2DiscreteScheduler", sigmas="uniform"),
    "k_dpm_2": _Base("KDPM2DiscreteScheduler", sigmas="uniform"),
    "dpm_2_a": _Base("KDPM2AncestralDiscreteScheduler", sigmas="uniform"),
    "k_dpm_2_a": _Base("KDPM2AncestralDiscreteScheduler", sigmas="uniform"),
    "dpmsolver": _Base("DPMSolverMultistepScheduler", {"algorithm_type": "dpmsolver", "solver_order": 2,
                                                       "final_sigmas_type": "sigma_min"}, sigmas="uniform"),
    "dpmsolver++": _Base("DPMSolverMultistepScheduler", _DPMPP_2M, sigmas="uniform"),
    "dpmsingle": _Base("DPMSolverSinglestepScheduler", {"algorithm_type": "dpmsolver++", "solver_order": 2,
                                                        "lower_order_final": True}, sigmas="uniform"),
}


@dataclass(frozen=True)
class SamplerInfo:
    """What a sampler name resolves to in this environment."""

    name: str                 # the canonical spelling ("DPM++ 2M Karras", "euler_a")
    scheduler: str            # diffusers class that will be built
    options: dict             # init options applied over the model's scheduler config
    sigmas: str | None        # "karras" | "exponential" | "uniform" | None (timestep sampler)
    stand_in: str | None = None  # why a different scheduler than A1111's is used, if one is


def _norm(name: str) -> str:
    return re.sub(r"\s+", " ", str(name).strip()).lower()


def _build_index() -> dict[str, tuple[str, _Base]]:
    index: dict[str, tuple[str, _Base]] = {}
    for label, base in _A1111.items():
        index[_norm(label)] = (label, base)
        if base.schedules:
            for suffix in SCHEDULE_SUFFIXES:
                index[_norm(f"{label} {suffix}")] = (f"{label} {suffix}",
                                                    _Base(base.scheduler, base.options, suffix.lower(), False))
    for label, target in _SD_SCRIPTS.items():
        key = _norm(label)
        if key in index:  # "ddim" == "DDIM": one sampler
            continue
        index[key] = (label, _A1111[target] if isinstance(target, str) else target)
    return index


_INDEX = _build_index()


def all_sampler_names() -> list[str]:
    """Every accepted spelling: A1111 names (with schedule suffixes), then sd-scripts names."""
    seen, out = set(), []
    for label, _ in _INDEX.values():
        if label not in seen:
            seen.add(label)
            out.append(label)
    for name in SD_SCRIPTS_SAMPLERS:  # "ddim" folds into "DDIM" above; list it anyway
        if name not in seen:
            seen.add(name)
            out.append(name)
    return out


def has_torchsde() -> bool:
    try:
        importlib.import_module("torchsde")
    except Exception:  # ImportError, or a broken install
        return False
    return True


def _has_scipy() -> bool:
    try:
        importlib.import_module("scipy.integrate")
    except Exception:
        return False
    return True


def _unknown(name) -> ValueError:
    a1111 = ", ".join(label for label, _ in _INDEX.values() if label not in SD_SCRIPTS_SAMPLERS)
    return ValueError(f"unknown sampler {name!r}. Valid A1111 names: {a1111}. "
                      f"Valid sd-scripts names: {', '.join(SD_SCRIPTS_SAMPLERS)}. Names are case-insensitive.")


def sampler_info(name: str) -> SamplerInfo:
    """Resolve a sampler name; ValueError (listing the valid names) when unknown."""
    if not isinstance(name, str) or _norm(name) not in _INDEX:
        raise _unknown(name)
    label, base = _INDEX[_norm(name)]
    scheduler, options, stand_in = base.scheduler, dict(base.options), None
    if scheduler == "DPMSolverSDEScheduler" and not has_torchsde():
        scheduler, options = "DPMSolverMultistepScheduler", dict(_DPMPP_2M_SDE)
        stand_in = ("torchsde is not installed: DPM++ SDE runs as DPMSolverMultistepScheduler"
                    "(algorithm_type='sde-dpmsolver++'), the multistep SDE solver")
    if base.sigmas is not None:
        options["timestep_spacing"] = "linspace"
        if base.sigmas == "karras":
            options["use_karras_sigmas"] = True
        elif base.sigmas == "exponential":
            options["use_exponential_sigmas"] = True
    return SamplerInfo(label, scheduler, options, base.sigmas, stand_in)


def _lms_class():
    """diffusers' LMSDiscreteScheduler, or (without scipy) a subclass with exact numpy integrals."""
    from diffusers.schedulers.scheduling_lms_discrete import LMSDiscreteScheduler

    if _has_scipy():
        return LMSDiscreteScheduler
    return _numpy_lms_class(LMSDiscreteScheduler)


_NUMPY_LMS = None


def _numpy_lms_class(parent):
    global _NUMPY_LMS
    if _NUMPY_LMS is None:
        class NumpyLMSDiscreteScheduler(parent):
            """LMSDiscreteScheduler whose coefficients need no scipy.

            The coefficient is the integral, from sigma_t to sigma_{t+1}, of the Lagrange basis
            polynomial through the last `order` sigmas; numpy integrates that polynomial exactly.
            """

            def get_lms_coefficient(self, order: int, t: int, current_order: int) -> float:
                sig = [float(self.sigmas[t - k]) for k in range(order)]
                poly = np.polynomial.Polynomial([1.0])
                for k in range(order):
                    if k == current_order:
                        continue
                    poly = poly * np.polynomial.Polynomial([-sig[k], 1.0]) / (sig[current_order] - sig[k])
                anti = poly.integ()
                return float(anti(float(self.sigmas[t + 1])) - anti(float(self.sigmas[t])))

        _NUMPY_LMS = NumpyLMSDiscreteScheduler
    return _NUMPY_LMS


def _scheduler_class(class_name: str):
    if class_name == "LMSDiscreteScheduler":
        return _lms_class()
    import diffusers

    return getattr(diffusers, class_name)


def _accepted(cls) -> set[str] | None:
    params = inspect.signature(cls.__init__).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return None
    return {n for n in params if n != "self"}


def make_scheduler(name: str, base_scheduler_config):
    """Build the diffusers scheduler for sampler `name` from the model's scheduler config.

    `base_scheduler_config` is the model's scheduler config (a dict, or a scheduler's `.config`).
    Only the keys that describe the model (`MODEL_KEYS`: betas, number of train timesteps,
    `prediction_type`, zero-terminal-SNR rescaling, timestep spacing/offset) are taken from it,
    so v-prediction models stay v-prediction; everything else is the sampler's (class defaults
    plus the options in the table above). Raises ValueError for an unknown name (the message
    lists the valid ones).
    """
    info = sampler_info(name)
    cls = _scheduler_class(info.scheduler)
    base = dict(base_scheduler_config or {})
    config = {k: base[k] for k in MODEL_KEYS if k in base}
    config.update(info.options)
    accepted = _accepted(cls)
    if accepted is not None:
        config = {k: v for k, v in config.items() if k in accepted}
    return cls.from_config(config)

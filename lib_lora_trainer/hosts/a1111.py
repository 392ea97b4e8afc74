"""The A1111 host: the ONLY module of the package that imports A1111's `modules`.

Paths always come from A1111 (cmd_opts.lora_dir, ckpt_dir, --data-dir), never hard-coded.
"""

from __future__ import annotations

import os
from pathlib import Path

from lib_lora_trainer import paths
from lib_lora_trainer.trainer_env import host_deps

# <extension>/.deps, filled by install.py: tomli-w etc. without touching A1111's venv. Activated again
# at every entry point: A1111's load_scripts() restores its saved sys.path after each script file,
# which drops an entry added while this module was first imported (seen in a real A1111 1.10.1).
host_deps.activate()


def _cmd_opts():
    from modules import shared
    return shared.cmd_opts


def lora_dir() -> Path:
    opts = _cmd_opts()
    if getattr(opts, "lora_dir", None):
        return Path(opts.lora_dir)
    from modules import paths as a1111_paths
    return Path(a1111_paths.models_path) / "Lora"


def data_dir() -> Path:
    """LORA_TRAINER_DATA_DIR if set, else `<extension>/data` (under --data-dir's extensions/)."""
    return paths.data_dir()


def api_auth() -> str | None:
    """A1111 protects its own /sdapi routes with --api-auth, never extension routes: we reuse it."""
    return getattr(_cmd_opts(), "api_auth", None) or None


def dataset_roots() -> list[Path]:
    """Folders the API may read datasets from: <data dir>/datasets, plus LORA_TRAINER_DATASET_ROOTS."""
    roots = [data_dir() / "datasets"]
    roots += [Path(p) for p in os.environ.get("LORA_TRAINER_DATASET_ROOTS", "").split(os.pathsep) if p]
    for root in roots:
        root.mkdir(parents=True, exist_ok=True)
    return roots


def checkpoint_dirs() -> list[Path]:
    """Where A1111 looks for base checkpoints: --ckpt-dir (if given), then models/Stable-diffusion."""
    from modules import sd_models
    dirs = [Path(d) for d in (getattr(_cmd_opts(), "ckpt_dir", None), sd_models.model_path) if d]
    return list(dict.fromkeys(dirs))


# ---- settings (registered by scripts/ from ui/settings_spec.py; read here by key) ----------
OPT_FREE_MODEL = "lora_trainer_free_model"          # False = keep A1111's model in VRAM while training
OPT_TRAINER_PYTHON = "lora_trainer_trainer_python"


def _opt(key: str, default):
    from modules import shared
    return getattr(shared.opts, key, default)


def keep_model_loaded() -> bool:
    if os.environ.get("LORA_TRAINER_KEEP_MODEL_LOADED", "").lower() in ("1", "true", "yes"):
        return True
    return not bool(_opt(OPT_FREE_MODEL, True))


def trainer_settings() -> dict:
    """Engine settings inside A1111: the user's trainer Python, else the venv the extension manages
    (created on first use; not with --skip-install, which promises no pip runs)."""
    return {"trainer_python": str(_opt(OPT_TRAINER_PYTHON, "") or ""),
            "trainer_env_dir": str(data_dir() / "trainer-env"),
            "trainer_env_install": not bool(getattr(_cmd_opts(), "skip_install", False)),
            "validate_trainer_python": True}


# ---- VRAM hand-off (logic in hosts/vram_handoff.py) ---------------------------------------
def unload_sd_model() -> bool:
    """A1111's model to RAM (Settings > Actions "Unload SD checkpoint to RAM"); False if none loaded.
    sd_models.model_data.sd_model, not shared.sd_model: that property would load a model first."""
    from modules import sd_models
    model = sd_models.model_data.sd_model
    if model is None:
        return False
    sd_models.unload_model_weights(model)
    return True


def reload_sd_model() -> None:
    """Back to its device ("Load SD checkpoint to VRAM"); reload_model_weights would return early
    because the same checkpoint counts as loaded."""
    from modules import sd_models
    model = sd_models.model_data.sd_model
    if model is not None:
        sd_models.send_model_to_device(model)


def sd_model_gpu() -> str | None:
    """The CUDA index A1111 generates on ("cuda" alone is the current device, 0), else None."""
    from modules import devices
    device = getattr(devices, "device", None)
    if getattr(device, "type", None) != "cuda":
        return None
    return str(device.index if device.index is not None else 0)


def vram_handoff_hooks():
    from modules.call_queue import queue_lock

    from .vram_handoff import VramHandoff, VramHandoffHooks
    return VramHandoffHooks(VramHandoff(unload_sd_model, reload_sd_model, host_gpu=sd_model_gpu,
                                        keep_loaded=keep_model_loaded, lock=queue_lock))


_service = None


def job_service():
    """One JobService per A1111 process, kept across "Reload UI" (scripts/ is re-executed then,
    this package module is not) with its background job loop running."""
    global _service
    host_deps.activate()
    if _service is None:
        from lib_lora_trainer.jobs.service import JobService
        from .a1111_renderer import A1111AutoTest

        # Order matters: the VRAM hand-off brings A1111's model back before the test generates with it.
        _service = JobService(data_dir(), lora_dir(), settings=trainer_settings(),
                              hooks=[vram_handoff_hooks(), A1111AutoTest()])
        _service.start_background()
    return _service


def mount_api(app) -> None:
    host_deps.activate()
    from lib_lora_trainer.api.app import mount
    from lib_lora_trainer.api.auth import parse_credentials

    service = job_service()
    mount(app, service, dataset_roots=dataset_roots(), upload_dir=data_dir() / "uploads",
          auth=parse_credentials(api_auth()) or None)


class A1111Host:
    """The Host (hosts/base.py) inside A1111: its checkpoints, interrogators and Lora list. The
    VRAM hand-off is the job service's hook (vram_handoff_hooks above)."""

    name = "a1111"
    txt2img_available = True

    @staticmethod
    def _opt(key: str):
        from lib_lora_trainer.ui.settings_spec import DEFAULTS
        return _opt(key, DEFAULTS.get(key))

    def lora_dir(self) -> Path:
        override = str(self._opt("lora_trainer_lora_dir") or "").strip()
        return Path(override) if override else lora_dir()

    def data_dir(self) -> Path:
        return data_dir()

    def checkpoints(self) -> list[tuple[str, str]]:
        from modules import sd_models
        return [(title, info.filename) for title, info in sd_models.checkpoints_list.items()]

    def refresh_checkpoints(self) -> None:
        from modules import shared
        shared.refresh_checkpoints()

    def captioners(self) -> dict:
        from modules import deepbooru, shared
        return {"BLIP (interrogate)": shared.interrogator.interrogate, "DeepBooru": deepbooru.model.tag}

    def job_service(self):
        service = job_service()
        service.settings.update(self.settings())   # the same dict the service's lifecycle reads
        service.lora_dir = self.lora_dir()
        return service

    def after_install(self, path) -> None:
        import sys
        networks = sys.modules.get("networks")   # the builtin Lora extension's module
        if networks is not None:
            networks.list_available_networks()

    def dataset_roots(self) -> list[Path]:
        return dataset_roots()

    def settings(self) -> dict:
        out = dict(trainer_settings())
        out["default_engine"] = self._opt("lora_trainer_default_engine") or "builtin"
        scripts_path = str(self._opt("lora_trainer_sd_scripts_path") or "").strip()
        if scripts_path:
            out["sd_scripts_path"] = scripts_path
        return out


_host = None


def host() -> A1111Host:
    """One host per A1111 process (kept across "Reload UI", like the job service)."""
    global _host
    host_deps.activate()
    if _host is None:
        _host = A1111Host()
    return _host

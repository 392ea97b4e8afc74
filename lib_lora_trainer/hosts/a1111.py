"""The webui host (AUTOMATIC1111 1.10.x and Forge Neo): the ONLY module of the package that
imports the host's `modules`.

Paths always come from the host (cmd_opts.lora_dir, ckpt_dir / ckpt_dirs, --data-dir), never
hard-coded. What differs between the two is probed here, never assumed from one host's layout:

- captioners: A1111 has shared.interrogator (BLIP) and modules.deepbooru; Neo removed both.
- checkpoint folders: A1111 cmd_opts.ckpt_dir (one), Neo cmd_opts.ckpt_dirs (a list); both
  sd_models.model_path.
- VRAM hand-off: A1111 sd_models.unload_model_weights / send_model_to_device on
  model_data.sd_model; Neo backend.memory_management.unload_all_models + soft_empty_cache, and its
  next generation loads the model back itself (no send_model_to_device; model_data.sd_model is
  never None, and its unload_model_weights throws the model away).
- Lora list refresh: networks.list_available_networks() in both (extensions-builtin/Lora,
  sd_forge_lora).
- exposed server: cmd_opts.disable_extension_access in both.

Only scripts/ and this module import `modules`. At host start scripts/ imports only this module
(with lib_lora_trainer.paths and trainer_env.host_deps: standard library); the rest is imported
when the host calls the callbacks.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import os
import sys
from pathlib import Path

from lib_lora_trainer import paths
from lib_lora_trainer.trainer_env import host_deps

# <extension>/.deps, filled by install.py: tomli-w etc. without touching A1111's venv. Activated again
# at every entry point: A1111's load_scripts() restores its saved sys.path after each script file,
# which drops an entry added while this module was first imported (seen in a real A1111 1.10.1).
host_deps.activate()

log = logging.getLogger("lora_trainer.host")


def _cmd_opts():
    from modules import shared
    return shared.cmd_opts


def _optional_module(name: str):
    """A host module if this host has it (Neo removed several), else None; never raises."""
    try:
        if name in sys.modules:
            return sys.modules[name]
        if importlib.util.find_spec(name) is None:
            return None
        return importlib.import_module(name)
    except Exception as exc:  # a module that exists but fails to import: report, carry on without it
        log.warning("lora-trainer: %s is present but could not be imported (%s); going on without it", name, exc)
        return None


def host_label() -> str:
    """The web UI's name for messages: "Forge Neo", "Forge" or "A1111"."""
    if "modules_forge" not in sys.modules and importlib.util.find_spec("modules_forge") is None:
        return "A1111"
    version = getattr(_optional_module("modules_forge.forge_version"), "version", "")
    return "Forge Neo" if str(version).lower() == "neo" else "Forge"


def exposed() -> bool:
    """The hosts' rule for risky extension features: True when the web UI is reachable beyond this
    machine (--listen, --share, --server-name, --ngrok) and --enable-insecure-extension-access is not
    given. Both A1111 and Neo compute it as cmd_opts.disable_extension_access; recomputed the same
    way where a host lacks the attribute."""
    opts = _cmd_opts()
    flag = getattr(opts, "disable_extension_access", None)
    if flag is not None:
        return bool(flag)
    non_local = any(getattr(opts, key, None) for key in ("share", "listen", "ngrok", "server_name"))
    return bool(non_local) and not getattr(opts, "enable_insecure_extension_access", False)


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
    """Where the host looks for base checkpoints: A1111's --ckpt-dir (one folder) and/or Neo's
    --ckpt-dirs (a list), whichever this host has, then models/Stable-diffusion (sd_models.model_path)."""
    from modules import sd_models
    opts = _cmd_opts()
    many = getattr(opts, "ckpt_dirs", None) or []
    if isinstance(many, (str, os.PathLike)):
        many = [many]
    found = [getattr(opts, "ckpt_dir", None), *many, getattr(sd_models, "model_path", None)]
    return list(dict.fromkeys(Path(d) for d in found if d))


def folder_limit():
    """None on a local web UI; on an exposed one (see `exposed`) the tab's folder fields are
    confined to the dataset roots, like the API (a confine.FolderLimit naming them)."""
    if not exposed():
        return None
    from lib_lora_trainer.confine import FolderLimit
    label = host_label()
    return FolderLimit(tuple(dataset_roots()),
                       reason=f"{label} is reachable from other machines (--listen, --share, --server-name or --ngrok)",
                       lift=f"start {label} with --enable-insecure-extension-access to allow any folder")


# ---- settings (registered by scripts/ from ui/settings_spec.py; read here by key) ----------
OPT_FREE_MODEL = "lora_trainer_free_model"          # False = keep A1111's model in VRAM while training
OPT_TRAINER_PYTHON = "lora_trainer_trainer_python"


def _opt(key: str, default):
    from modules import shared
    return getattr(shared.opts, key, default)


# Settings that name a program or folder on the server (lora_trainer_trainer_python,
# lora_trainer_sd_scripts_path, lora_trainer_lora_dir): the trainer runs that Python / that
# sd-scripts checkout (an uploaded dataset could hold a train_network.py), LoRAs are written to that
# folder. Anyone who reaches an exposed web UI can change Settings, so there they are not used
# (environment variables set by the owner still are).
_warned: set[str] = set()


def _path_opt(key: str, default=""):
    value = str(_opt(key, default) or "").strip()
    if value and exposed():
        if key not in _warned:
            _warned.add(key)
            log.warning("lora-trainer: ignoring the setting %s=%r: %s is reachable from other machines; set it "
                        "with an environment variable (LORA_TRAINER_PYTHON, LORA_TRAINER_SD_SCRIPTS) or start with "
                        "--enable-insecure-extension-access", key, value, host_label())
        return ""
    return value


def keep_model_loaded() -> bool:
    if os.environ.get("LORA_TRAINER_KEEP_MODEL_LOADED", "").lower() in ("1", "true", "yes"):
        return True
    return not bool(_opt(OPT_FREE_MODEL, True))


def trainer_settings() -> dict:
    """Engine settings inside A1111: the user's trainer Python, else the venv the extension manages
    (created on first use; not with --skip-install, which promises no pip runs)."""
    return {"trainer_python": _path_opt(OPT_TRAINER_PYTHON),
            "trainer_env_dir": str(data_dir() / "trainer-env"),
            "trainer_env_install": not bool(getattr(_cmd_opts(), "skip_install", False)),
            "validate_trainer_python": True}


# ---- VRAM hand-off (logic in hosts/vram_handoff.py) ---------------------------------------
def forge_memory_management():
    """Forge's / Neo's own model management (`backend.memory_management`, the module the host's
    sd_models uses), or None where the host has none (A1111)."""
    from modules import sd_models
    mm = getattr(sd_models, "memory_management", None) or sys.modules.get("backend.memory_management")
    return mm if callable(getattr(mm, "unload_all_models", None)) else None


def handoff_method() -> str:
    """How this host moves its model: "forge" (memory management), "a1111" (sd_models), "none"."""
    from modules import sd_models
    if forge_memory_management() is not None:
        return "forge"
    if callable(getattr(sd_models, "unload_model_weights", None)) and \
            callable(getattr(sd_models, "send_model_to_device", None)):
        return "a1111"
    return "none"


def unload_sd_model() -> bool:
    """The host's model out of VRAM; False if none was there.

    A1111: sd_models.unload_model_weights (Settings > Actions "Unload SD checkpoint to RAM") on
    sd_models.model_data.sd_model - not shared.sd_model, a property that would load a model first.
    Forge Neo: model_data.sd_model is never None (a FakeInitialModel) and unload_model_weights
    throws the model away (the next generation reads it from disk again), so its memory management
    moves every loaded model to its offload device instead (`unload_all_models`, `soft_empty_cache`):
    the model object stays, its weights wait in RAM."""
    from modules import sd_models
    method = handoff_method()
    if method == "forge":
        mm = forge_memory_management()
        loaded = getattr(mm, "current_loaded_models", None)
        before = len(loaded) if loaded is not None else None
        mm.unload_all_models()
        if callable(getattr(mm, "soft_empty_cache", None)):
            mm.soft_empty_cache()
        return True if before is None else len(mm.current_loaded_models) < before
    if method == "a1111":
        model = getattr(getattr(sd_models, "model_data", None), "sd_model", None)
        if model is None:
            return False
        sd_models.unload_model_weights(model)
        return True
    log.warning("lora-trainer: this web UI has no known way to move its model out of VRAM; training beside it")
    return False


def reload_sd_model() -> None:
    """Back to its device. A1111: send_model_to_device ("Load SD checkpoint to VRAM";
    reload_model_weights would return early because the same checkpoint counts as loaded).
    Forge Neo: nothing to do - its sampling loads the models it needs onto the GPU
    (memory_management.load_models_gpu) at the next generation, as after its own unloads."""
    from modules import sd_models
    if handoff_method() != "a1111":
        return
    model = getattr(sd_models.model_data, "sd_model", None)
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
                              hooks=[vram_handoff_hooks(),
                                     A1111AutoTest(allow_downloads=lambda: _opt("lora_trainer_scorer_downloads", False))])
        _service.start_background()
    return _service


def mount_api(app) -> None:
    """The HTTP API under /lora-trainer/v1. Dataset paths are always confined to the dataset roots;
    on an exposed web UI base_model paths are confined to the checkpoint folders too."""
    host_deps.activate()
    from lib_lora_trainer.api.app import mount
    from lib_lora_trainer.api.auth import parse_credentials

    service = job_service()
    options = {"model_roots": checkpoint_dirs()} if exposed() else {}
    mount(app, service, dataset_roots=dataset_roots(), upload_dir=data_dir() / "uploads",
          auth=parse_credentials(api_auth()) or None, **options)


class A1111Host:
    """The Host (hosts/base.py) inside A1111 or Forge Neo: its checkpoints, interrogators (where
    it has them) and Lora list. The VRAM hand-off is the job service's hook (vram_handoff_hooks)."""

    name = "a1111"
    txt2img_available = True

    @staticmethod
    def _opt(key: str):
        from lib_lora_trainer.ui.settings_spec import DEFAULTS
        return _opt(key, DEFAULTS.get(key))

    def lora_dir(self) -> Path:
        override = _path_opt("lora_trainer_lora_dir")
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
        """The host's captioning models that exist: A1111 has BLIP (shared.interrogator) and
        DeepBooru (modules.deepbooru); Forge Neo removed both, so there it is {} and the tab says so."""
        from modules import shared
        out = {}
        interrogator = getattr(shared, "interrogator", None)
        if callable(getattr(interrogator, "interrogate", None)):
            out["BLIP (interrogate)"] = interrogator.interrogate
        model = getattr(_optional_module("modules.deepbooru"), "model", None)
        if callable(getattr(model, "tag", None)):
            out["DeepBooru"] = model.tag
        return out

    def captioners_note(self) -> str:
        return (f"{host_label()} has no captioning model (A1111 brings BLIP and DeepBooru; Forge Neo removed "
                "them): write captions here or with another tool.")

    def folder_limit(self):
        return folder_limit()

    def job_service(self):
        service = job_service()
        service.settings.update(self.settings())   # the same dict the service's lifecycle reads
        service.lora_dir = self.lora_dir()
        return service

    def after_install(self, path) -> None:
        """Rescan the Lora list: the builtin Lora extension's top-level `networks` module (A1111's
        extensions-builtin/Lora, Neo's sd_forge_lora) has list_available_networks() in both."""
        networks = sys.modules.get("networks")
        if callable(getattr(networks, "list_available_networks", None)):
            networks.list_available_networks()

    def dataset_roots(self) -> list[Path]:
        return dataset_roots()

    def settings(self) -> dict:
        out = dict(trainer_settings())
        out["default_engine"] = self._opt("lora_trainer_default_engine") or "builtin"
        scripts_path = _path_opt("lora_trainer_sd_scripts_path")
        if scripts_path:
            out["sd_scripts_path"] = scripts_path
        version = str(self._opt("lora_trainer_sd_scripts_version") or "")
        out["sd_scripts_version"] = "" if version == "default" else version
        out["scorer_downloads"] = bool(self._opt("lora_trainer_scorer_downloads"))
        for key in ("sd_scripts_url", "sd_scripts_torch"):  # what gets cloned and pip-installed: like a path
            value = _path_opt(f"lora_trainer_{key}")
            if value:
                out[key] = value
        return out


_host = None


def host() -> A1111Host:
    """One host per A1111 process (kept across "Reload UI", like the job service)."""
    global _host
    host_deps.activate()
    if _host is None:
        _host = A1111Host()
    return _host

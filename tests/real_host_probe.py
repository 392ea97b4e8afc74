"""Run inside a REAL web UI's Python (A1111 1.10.x or Forge Neo), cwd = its checkout: initialise the
host's own modules the way its webui.py does (no server, no model), then exercise our host glue
(lib_lora_trainer/hosts/a1111.py) against the host's real functions and print one JSON line of
findings. Used by tests/test_host_real.py; not a test module itself (no test_ prefix).

    <host python> tests/real_host_probe.py a1111|neo <repo root> <work dir>

What it checks, with the host's real code:
- capabilities: host label, hand-off method, captioners, checkpoint folders, exposure (started
  with --listen, so cmd_opts.disable_extension_access is the host's own computation);
- the VRAM hand-off through vram_handoff_hooks(): the real sd_models / backend.memory_management
  functions move a real torch module, the real queue_lock (a FIFOLock) makes a generation wait
  until the job ends, and the model is usable afterwards (A1111: send_model_to_device; Neo: its
  load_models_gpu, as its next generation does);
- the Lora list: a LoRA installed by jobs/install.py appears after host.after_install() in the
  builtin Lora extension's networks.available_networks, and its extra-networks page shows it for
  the loaded model's family and hides it for the other one (A1111: SdVersion from metadata and
  sidecar; Neo: the preset filter).
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from types import SimpleNamespace


def main(kind: str, repo: str, work: str) -> dict:
    checkout = os.getcwd()
    ckpt_a, ckpt_b, lora_dir = (os.path.join(work, n) for n in ("ckpt-a", "ckpt-b", "Lora"))
    for d in (ckpt_a, ckpt_b, lora_dir):
        os.makedirs(d, exist_ok=True)
    os.environ["LORA_TRAINER_DATA_DIR"] = os.path.join(work, "data")
    # --data-dir: the host's config, caches and models folder go to the work dir, not the checkout
    data = ["--data-dir", os.path.join(work, "webui-data")]
    if kind == "a1111":
        sys.argv = ["webui.py", "--skip-torch-cuda-test", "--use-cpu", "all", "--no-half", "--skip-load-model-at-start",
                    "--no-download-sd-model", "--listen", "--ckpt-dir", ckpt_a, "--lora-dir", lora_dir, *data]
    else:
        sys.argv = ["webui.py", "--cpu", "--skip-python-version-check", "--listen", "--ckpt-dirs", ckpt_a,
                    "--ckpt-dirs", ckpt_b, "--lora-dir", lora_dir, *data]
    sys.path.insert(0, checkout)
    started = time.perf_counter()
    if kind == "neo":
        from modules_forge.initialization import initialize_forge
        initialize_forge()
    from modules import initialize
    initialize.imports()
    out: dict = {"init_s": round(time.perf_counter() - started, 1)}

    sys.path.insert(0, repo)
    import torch
    from modules import call_queue, sd_models, shared

    from lib_lora_trainer.hosts import a1111 as glue

    host = glue.host()
    limit = host.folder_limit()
    out.update(label=glue.host_label(), method=glue.handoff_method(), captioners=sorted(host.captioners()),
               checkpoint_dirs=[str(p) for p in glue.checkpoint_dirs()], model_path=str(sd_models.model_path),
               exposed=glue.exposed(), limit_roots=[str(r) for r in limit.roots] if limit else None,
               limit_reason=limit.reason if limit else None, lora_dir=str(glue.lora_dir()),
               has_send_model_to_device=hasattr(sd_models, "send_model_to_device"))

    # ---- the VRAM hand-off with the host's real functions ----------------------------------------
    glue.sd_model_gpu = lambda: "0"   # on this CPU machine: pretend the host generates on GPU 0
    hooks = glue.vram_handoff_hooks()
    job = SimpleNamespace(id="probe-job", gpu="0", config={})
    waited: dict = {}

    def generation():   # what txt2img does: take the queue lock
        with call_queue.queue_lock:
            waited["at"] = time.monotonic()

    if kind == "a1111":
        class Recording(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.lin = torch.nn.Linear(4, 4)
                self.lowvram = False
                self.moves: list[str] = []

            def forward(self, x):
                return self.lin(x)

            def to(self, *args, **kwargs):
                device = kwargs.get("device", args[0] if args else None)
                self.moves.append(str(device))
                return super().to(*args, **kwargs)

        model = Recording()
        sd_models.model_data.sd_model = model
        hooks.before_start(job)
        thread = threading.Thread(target=generation)
        thread.start()
        time.sleep(0.5)
        waiting = thread.is_alive() and "at" not in waited
        moves_during = list(model.moves)
        released = time.monotonic()
        hooks.after_end(job)
        thread.join(10)
        out["handoff"] = {"moves_during": moves_during, "moves_after": model.moves[len(moves_during):],
                          "generation_waited": waiting, "generation_ran_after": waited.get("at", 0) >= released,
                          "model_kept": sd_models.model_data.sd_model is model,
                          "works_after": list(model(torch.ones(1, 4)).shape)}
        sd_models.model_data.sd_model = None
    else:
        from backend import memory_management as mm
        from backend.patcher.base import ModelPatcher

        net = torch.nn.Sequential(torch.nn.Linear(8, 8))
        patcher = ModelPatcher(net, load_device=mm.get_torch_device(), offload_device=mm.unet_offload_device(),
                               current_device=mm.unet_offload_device())
        mm.load_models_gpu([patcher])
        before = len(mm.current_loaded_models)
        kept = sd_models.model_data.sd_model          # a FakeInitialModel: must stay the same object
        hooks.before_start(job)
        during = len(mm.current_loaded_models)
        thread = threading.Thread(target=generation)
        thread.start()
        time.sleep(0.5)
        waiting = thread.is_alive() and "at" not in waited
        released = time.monotonic()
        hooks.after_end(job)
        thread.join(10)
        mm.load_models_gpu([patcher])                 # what Neo's next generation does
        out["handoff"] = {"loaded_before": before, "loaded_during": during,
                          "loaded_after_next_generation": len(mm.current_loaded_models),
                          "generation_waited": waiting, "generation_ran_after": waited.get("at", 0) >= released,
                          "model_kept": sd_models.model_data.sd_model is kept,
                          "works_after": list(net(torch.ones(1, 8)).shape)}

    # ---- the Lora list: install, refresh, the page's family filter -----------------------------
    builtin = os.path.join(checkout, "extensions-builtin", "Lora" if kind == "a1111" else "sd_forge_lora")
    sys.path.insert(0, builtin)
    from modules import script_loading
    script_loading.load_module(os.path.join(builtin, "scripts", "lora_script.py"))   # its options, as at startup
    import networks
    import ui_extra_networks_lora

    from lib_lora_trainer.jobs.install import install_lora
    from lib_lora_trainer.lora_file.io import save_lora

    installed = {}
    for family, version in (("sd1", "sd_v1"), ("sdxl", "sdxl_base_v1-0")):
        src = os.path.join(work, f"{family}.safetensors")
        save_lora(src, {"lora_unet_x.lora_down.weight": torch.ones(2, 4), "lora_unet_x.lora_up.weight": torch.ones(4, 2),
                        "lora_unet_x.alpha": torch.tensor(2.0)},
                  {"ss_base_model_version": version, "ss_v2": "False", "ss_output_name": f"probe_{family}"})
        installed[family] = install_lora(src, glue.lora_dir(), f"probe_{family}", model_type=family, trigger="zk")
    before_refresh = sorted(getattr(networks, "available_networks", {}))
    for path in installed.values():
        host.after_install(path)
    out["lora_list"] = {"before": before_refresh, "after": sorted(networks.available_networks)}

    page = ui_extra_networks_lora.ExtraNetworksPageLora()
    shown = {}
    if kind == "a1111":
        for model_family, flags in (("sd1", (True, False, False)), ("sdxl", (False, False, True))):
            sd_models.model_data.sd_model = SimpleNamespace(is_sd1=flags[0], is_sd2=flags[1], is_sdxl=flags[2])
            sd_models.model_data.was_loaded_at_least_once = True
            shown[model_family] = sorted(n for n in ("probe_sd1", "probe_sdxl") if page.create_item(n) is not None)
    else:
        shared.opts.data["lora_preset_filter"] = True
        for preset in ("sd", "xl"):
            shared.opts.data["forge_preset"] = preset
            shown[preset] = sorted(n for n in ("probe_sd1", "probe_sdxl") if page.create_item(n) is not None)
    out["page_shows"] = shown
    service = glue._service
    if service is not None:
        service.stop_background()
    return out


if __name__ == "__main__":
    result = main(*sys.argv[1:4])
    sys.stdout.flush()
    print("PROBE-RESULT " + json.dumps(result), flush=True)
    os._exit(0)   # the hosts leave threads behind (memory monitor, model loader)

"""Helpers of the LoRA-test tests: a fake renderer, a succeeded job without training, and
start_test from a host-like process (working folder and PYTHONPATH not the repository's)."""

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from PIL import Image

from lib_lora_trainer.jobs.service import JobService

ROOT = Path(__file__).resolve().parent.parent


class FakeRenderer:
    """Pictures whose colour depends on seed and LoRA weight; counts what it was asked for."""

    def __init__(self, fail_after: int | None = None, delay: float = 0.0):
        self.calls: list[tuple] = []
        self.fail_after, self.delay = fail_after, delay

    def images(self, prompt, seeds, loras, *, sampler, steps, cfg_scale, negative="", width=None, height=None):
        if self.fail_after is not None and len(self.calls) >= self.fail_after:
            raise RuntimeError("CUDA out of memory (fake)")
        time.sleep(self.delay)
        self.calls.append((prompt, tuple(seeds), tuple((str(p), w) for p, w in loras)))
        w = sum(float(x) for _, x in loras)
        return [Image.new("RGB", (32, 32), (int(s) * 20 % 256, int(w * 200), 50)) for s in seeds]


def make_lora(path: Path) -> Path:
    import torch

    from lib_lora_trainer.lora_file.io import save_lora

    save_lora(path, {"lora_unet_x.lora_down.weight": torch.zeros(2, 4), "lora_unet_x.lora_up.weight": torch.zeros(4, 2),
                     "lora_unet_x.alpha": torch.tensor(2.0)}, {"ss_output_name": path.stem, "ss_network_dim": "2"})
    return path


def succeeded_job(service: JobService, tmp: Path, name: str = "zyr", base_model: str | None = None):
    """A succeeded job row with an installed LoRA and a two-picture prepared dataset (no training)."""
    from lib_lora_trainer.jobs.install import install_lora

    folder = service.jobs_root / f"job-{name}"
    img = folder / "dataset" / "img" / "10_zyrette"
    img.mkdir(parents=True)
    for i in range(2):
        Image.new("RGB", (32, 32), (200, 40 * i, 90)).save(img / f"{i}.png")
        (img / f"{i}.txt").write_text(f"zyrette, picture {i}")
    src = make_lora(tmp / f"{name}-out.safetensors")
    installed = install_lora(src, service.lora_dir, name, model_type="sd1", trigger="zyrette")
    cfg = {"name": name, "trigger": "zyrette", "base_model": base_model or str(tmp / "missing-model.safetensors"),
           "resolution": 32}
    job = service.store.create(name, "builtin", str(folder), cfg, state="running")
    return service.store.update(job.id, state="succeeded", installed_path=str(installed), finished_at=time.time())


HOST_LIKE_PARENT = textwrap.dedent("""
    import json, sys, time
    sys.path.insert(0, {root!r})          # as A1111 does while it imports an extension's scripts
    from pathlib import Path
    from lib_lora_trainer import child_env
    child_env.DEPS_DIR = Path({deps!r})   # <ext>/.deps, where install.py puts tomli-w
    from lib_lora_trainer.evaluate.auto import AutoTestHook, test_status
    from lib_lora_trainer.jobs.service import JobService

    service = JobService({data!r}, {lora!r}, settings={{"trainer_python": {python!r}}})
    job = service.get({job_id!r})
    hook = AutoTestHook(service.data_dir, settings=service.settings, extra_args={extra!r})
    status = hook.start_test(job)
    print("STARTED", status.state, flush=True)
    deadline = time.time() + {timeout!r}
    while test_status(Path(job.job_dir)).state == "running" and time.time() < deadline:
        time.sleep(0.2)
    print("STATUS", json.dumps(test_status(Path(job.job_dir)).as_dict()), flush=True)
""")


def host_like_start(tmp_path, service, job, python, extra=(), timeout=120.0):
    """start_test from a process whose working folder is not the repository and whose PYTHONPATH
    lacks it (a host's): the child must still find our package and <ext>/.deps."""
    deps = tmp_path / "deps"
    deps.mkdir(exist_ok=True)
    elsewhere = tmp_path / "webui"
    elsewhere.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    code = HOST_LIKE_PARENT.format(root=str(ROOT), deps=str(deps), data=str(service.data_dir),
                                   lora=str(service.lora_dir), python=str(python), job_id=job.id,
                                   extra=tuple(extra), timeout=timeout)
    r = subprocess.run([sys.executable, "-c", code], cwd=elsewhere, env=env, capture_output=True, text=True,
                       timeout=timeout + 60)
    assert r.returncode == 0, r.stderr
    status = json.loads(r.stdout.split("STATUS ", 1)[1])
    return r.stdout, status, deps


def recording_python(tmp_path) -> Path:
    """A stand-in "trainer Python": records its argv, cwd and environment, then runs the real one."""
    script = tmp_path / "trainer-python"
    script.write_text(textwrap.dedent(f"""\
        #!{sys.executable}
        import json, os, sys
        with open({str(tmp_path / 'child.json')!r}, "w") as fh:
            json.dump({{"argv": sys.argv, "cwd": os.getcwd(), "env": dict(os.environ)}}, fh)
        os.execv({sys.executable!r}, [{sys.executable!r}, *sys.argv[1:]])
    """))
    script.chmod(0o755)
    return script

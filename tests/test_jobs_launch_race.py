"""The launch race seen in a real A1111: the tab's timed refresh reconciled a job between
`claim_next` (RUNNING, no pid yet) and the moment the launch stored the supervisor's pid, found
"no live process, no exit file" and finished it as interrupted while the trainer went on.

Here other processes reconcile in a tight loop while jobs are launched, many rounds, with real
subprocesses and a real SQLite file. The trainer is a small interpreter stand-in (it answers the
builtin engine's command line, sleeps, prints sd-scripts' lines and writes a kohya-format file),
so each round takes about a second; a hook that sleeps like A1111's VRAM hand-off widens the
window between claim and pid, as a loaded machine does.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from jobs_helpers import ROOT, photos, tiny_config
from lib_lora_trainer.jobs import states as S
from lib_lora_trainer.jobs.service import JobService

FAKE_TRAINER = '''#!{python}
import json, os, struct, sys, time, tomllib
args = sys.argv[1:]
run = tomllib.loads(open(args[args.index("--config_file") + 1], encoding="utf-8").read())
print("steps:   0%|          | 0/2 [00:00<?, ?it/s]", flush=True)
time.sleep(float(os.environ.get("FAKE_TRAIN_S", "0.6")))
name = "lora_unet_down_blocks_0_attentions_0_proj_in"
tensors = {{name + ".alpha": (b"\\x00\\x00\\x80\\x40", [])}}
header, offset, blob = {{"__metadata__": {{"ss_output_name": run["output_name"], "ss_steps": "2"}}}}, 0, b""
for key, (data, shape) in tensors.items():
    header[key] = {{"dtype": "F32", "shape": shape, "data_offsets": [offset, offset + len(data)]}}
    offset += len(data); blob += data
raw = json.dumps(header).encode()
out = os.path.join(run["output_dir"], run["output_name"] + ".safetensors")
with open(out, "wb") as f:
    f.write(struct.pack("<Q", len(raw)) + raw + blob)
print("steps: 100%|##########| 2/2 [00:01<00:00,  1.50it/s, avr_loss=0.12]", flush=True)
print("model saved.", flush=True)
'''

RECONCILER = '''
import sys, time
from pathlib import Path
from lib_lora_trainer.jobs.service import JobService
service = JobService(sys.argv[1], sys.argv[2])
stop = Path(sys.argv[3])
while not stop.exists():
    service.reconcile()
    time.sleep(0.002)
'''


class SlowStartHook:
    """Like A1111's VRAM hand-off, which unloads the model before the trainer starts."""

    def before_start(self, job) -> None:
        time.sleep(0.25)

    def after_end(self, job) -> None:
        pass


def test_jobs_launched_while_others_reconcile_are_never_marked_interrupted(tmp_path, tiny_model):
    trainer = tmp_path / "fake-python"
    trainer.write_text(FAKE_TRAINER.format(python=sys.executable), encoding="utf-8")
    trainer.chmod(0o755)
    data, lora_dir, stop = tmp_path / "data", tmp_path / "Lora", tmp_path / "stop"
    service = JobService(data, lora_dir, {"trainer_python": str(trainer)}, hooks=[SlowStartHook()])
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    reconcilers = [subprocess.Popen([sys.executable, "-c", RECONCILER, str(data), str(lora_dir), str(stop)],
                                    env=env, cwd=tmp_path) for _ in range(2)]
    dataset = photos(tmp_path, n=2)
    outcomes = []
    try:
        time.sleep(1.0)  # the reconcilers are polling before the first launch
        for round_no in range(12):
            job = service.submit(dataset, tiny_config(tiny_model, f"race{round_no}", max_train_steps=2))
            service.tick()  # claim + launch, with the other processes reconciling meanwhile
            deadline = time.time() + 60
            while service.get(job.id).state not in S.FINISHED and time.time() < deadline:
                service.reconcile()
                time.sleep(0.05)
            done = service.get(job.id)
            outcomes.append((done.state, done.error_kind, done.error))
    finally:
        stop.write_text("stop")
        for proc in reconcilers:
            proc.wait(timeout=30)
    assert all(p.returncode == 0 for p in reconcilers)
    assert outcomes == [(S.SUCCEEDED, None, None)] * 12, outcomes
    installed = sorted(p.name for p in Path(lora_dir).glob("*.safetensors"))
    assert installed == sorted(f"race{i}.safetensors" for i in range(12))
    service.reconcile()
    assert _zombie_children() == []  # a long-lived host keeps no <defunct> supervisors


def _zombie_children() -> list[int]:
    me, found = str(os.getpid()), []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = open(f"/proc/{entry}/stat", "rb").read().rsplit(b") ", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] == b"Z" and fields[1].decode() == me:
            found.append(int(entry))
    return found


def test_a_launch_whose_launcher_died_before_storing_the_pid_is_adopted(tmp_path, tiny_model):
    """The launching process dies right after starting the supervisor: the next reconcile takes
    the supervisor's pid from its pid file and follows the job to the end."""
    trainer = tmp_path / "fake-python"
    trainer.write_text(FAKE_TRAINER.format(python=sys.executable), encoding="utf-8")
    trainer.chmod(0o755)
    data, lora_dir = tmp_path / "data", tmp_path / "Lora"
    settings = {"trainer_python": str(trainer)}
    service = JobService(data, lora_dir, settings)
    job = service.submit(photos(tmp_path, n=2), tiny_config(tiny_model, "orphan", max_train_steps=2))
    # A launcher in another process: claims, starts the supervisor, and is killed before storing the pid.
    code = ("import os, sys\n"
            "from lib_lora_trainer.jobs.service import JobService\n"
            "from lib_lora_trainer.jobs.processes import process_identity\n"
            "import lib_lora_trainer.jobs.lifecycle as lc\n"
            "s = JobService(sys.argv[1], sys.argv[2], {'trainer_python': sys.argv[3]})\n"
            "real = s.store.update\n"
            "def update(job_id, **kw):\n"
            "    if 'pid' in kw: os._exit(9)\n"
            "    return real(job_id, **kw)\n"
            "s.store.update = update\n"
            "job = s.store.claim_next('0', launcher=process_identity())\n"
            "s.lifecycle.launch(job)\n")
    proc = subprocess.run([sys.executable, "-c", code, str(data), str(lora_dir), str(trainer)],
                          env=dict(os.environ, PYTHONPATH=str(ROOT)), cwd=tmp_path, timeout=120)
    assert proc.returncode == 9
    row = service.get(job.id)
    assert row.state == S.RUNNING and row.pid is None
    done = service.wait(job.id, poll_s=0.1, timeout_s=60)
    assert done.state == S.SUCCEEDED, (done.error_kind, done.error)
    assert json.loads((done.folder / "exitcode.json").read_text())["returncode"] == 0

"""The first Start builds the trainer environment (47 s in A1111 with the host torch linked,
minutes on a slow network). The tab must say so - "setting up", with the step - instead of
"running, step 0/32, ETA -", and pip's own output stays out of the job's log."""

from __future__ import annotations

from types import SimpleNamespace

from lib_lora_trainer.jobs import states as S
from lib_lora_trainer.jobs.progress import ProgressParser
from lib_lora_trainer.trainer_env.managed import ManagedEnv
from lib_lora_trainer.ui.job_view import progress_html
from test_trainer_env import HOST, host_has_torch

FIRST_USE_LOG = """\
[lora-trainer] run start 2026-12-03 10:00:00
[trainer-env] creating the trainer environment in /data/trainer-env (first use only)
[trainer-env] the tools' output goes to /data/jobs/x/trainer_env.log
[trainer-env] step 1/3: python -m venv (Python 3.10.14)
[trainer-env] step 2/3: linking the host's torch
[trainer-env] step 3/3: pip install diffusers==0.42.1 peft==0.21.2 (several minutes on first use)
"""


def test_parser_reports_the_setup_phase_until_training_starts():
    parser = ProgressParser()
    parser.feed(FIRST_USE_LOG)
    state = parser.state
    assert state.phase == "setup" and state.phase_detail.startswith("step 3/3: pip install")
    assert not state.failed and state.errors == []
    parser.feed("[trainer-env] ready in 47 s: /data/trainer-env/bin/python\n")
    assert state.phase is None
    parser.feed("[trainer-env] step 1/3: python -m venv\n")
    parser.feed("steps:   3%|3         | 1/32 [00:01<00:31,  1.00it/s, avr_loss=0.2]\n")
    assert state.phase is None and state.step == 1


def test_tab_shows_setting_up_with_the_step_not_an_eta():
    job = SimpleNamespace(state=S.RUNNING, name="zyrette", id="j1", engine="builtin",
                          progress={"step": 0, "total": 32, "phase": "setup",
                                    "phase_detail": "step 3/3: pip install diffusers==0.42.1"})
    html = progress_html(job)
    assert "setting up" in html and "step 3/3: pip install" in html and "ETA" not in html
    job.progress = {"step": 5, "total": 32, "eta_s": 30}
    assert "setting up" not in progress_html(job) and "ETA" in progress_html(job)


def test_pip_output_goes_to_the_detail_log_and_only_steps_to_the_progress(tmp_path):
    host_has_torch()
    lines: list[str] = []
    detail = tmp_path / "trainer_env.log"
    env = ManagedEnv(tmp_path / "env", HOST, requirements=["tomli-w==1.0.0"])
    env.ensure(progress=lines.append, detail_log=detail)
    assert env.ready()
    assert all(line.startswith("[trainer-env] ") and not line.startswith("[trainer-env]   ") for line in lines)
    assert [line.split(":")[0] for line in lines if " step " in line] == [
        "[trainer-env] step 1/3", "[trainer-env] step 2/3", "[trainer-env] step 3/3"]
    pip_output = detail.read_text()
    assert "tomli" in pip_output.lower() and "[trainer-env]" in pip_output

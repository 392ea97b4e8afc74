"""The key check against an sd-scripts checkout's own parser: a real probe subprocess over a
stand-in checkout (tests/sd_scripts_standin.py), the per-content cache, the version adaptations,
values sd-scripts would take unchecked, and the refusal a user sees at submit and at launch."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from jobs_helpers import photos, tiny_config
from lib_lora_trainer.engines.base import EngineUnavailable
from lib_lora_trainer.engines.kohya import KohyaEngine
from lib_lora_trainer.engines.sd_scripts_args import (AcceptedArgs, accepted_args, adapt, fingerprint, ignored_keys,
                                                      unchecked_values)
from lib_lora_trainer.jobs import states as S
from lib_lora_trainer.jobs.service import JobService, SubmitError
from sd_scripts_standin import git, make_checkout, train_network_source, written_keys


def _tagged_checkout(folder: Path, tag: str, known: list[str] | None = None) -> Path:
    make_checkout(folder, known)
    git(folder, "init", "-q")
    git(folder, "add", "-A")
    git(folder, "commit", "-q", "-m", tag)
    git(folder, "tag", tag)
    return folder


def _settings(checkout: Path, tmp_path: Path) -> dict:
    return {"sd_scripts_path": str(checkout), "sd_scripts_python": sys.executable,
            "engines_dir": str(tmp_path / "engines")}


def test_the_probe_reads_the_checkouts_own_parser_and_caches_it_per_content(tmp_path):
    checkout = make_checkout(tmp_path / "co", known=["network_dim", "learning_rate"])
    engine = KohyaEngine({"sd_scripts_path": str(checkout)})
    cache = tmp_path / "cache"
    first = accepted_args(checkout, sys.executable, "train_network", engine.launch_env(checkout), cache)
    assert first.source == "train_network.setup_parser"
    assert "network_dim" in first and "learning_rate" in first and "noise_offset" not in first
    assert "config_file" in first and "dataset_config" in first
    # cached: a Python that cannot run is never asked again for the same content
    again = accepted_args(checkout, "/nonexistent/python", "train_network", {}, cache)
    assert dict(again.args) == dict(first.args)
    # new content (a git pull): asked again
    before = fingerprint(checkout)
    (checkout / "train_network.py").write_text(train_network_source(["network_dim", "noise_offset"]))
    assert fingerprint(checkout) != before
    newer = accepted_args(checkout, sys.executable, "train_network", engine.launch_env(checkout), cache)
    assert "noise_offset" in newer and "learning_rate" not in newer


def test_a_checkout_without_a_parser_says_so(tmp_path):
    checkout = make_checkout(tmp_path / "co")
    (checkout / "train_network.py").write_text("raise SystemExit('boom at import')\n")
    from lib_lora_trainer.engines.sd_scripts_args import SdScriptsArgsError

    with pytest.raises(SdScriptsArgsError, match="did not build its argument parser.*boom at import"):
        accepted_args(checkout, sys.executable, "train_network", KohyaEngine().launch_env(checkout), tmp_path / "c")


def test_adapt_moves_loraplus_into_network_args_and_drops_log_only_keys():
    accepted = AcceptedArgs("train_network", "x", {k: {} for k in ("network_module", "network_args", "output_dir")})
    run = {"network_module": "networks.lora", "network_args": ["conv_dim=4"], "loraplus_lr_ratio": 16,
           "console_log_simple": True, "output_dir": "/o"}
    adapted, notes = adapt(run, accepted)
    assert adapted == {"network_module": "networks.lora", "network_args": ["conv_dim=4", "loraplus_lr_ratio=16"],
                       "output_dir": "/o"}
    assert len(notes) == 2 and ignored_keys(adapted, accepted) == []
    assert ignored_keys(run, accepted) == ["console_log_simple", "loraplus_lr_ratio"]


def test_values_a_toml_would_slip_past_argparse_are_named():
    accepted = AcceptedArgs("train_network", "x", {
        "learning_rate": {"kind": "StoreAction", "type": "float"},
        "max_train_steps": {"kind": "StoreAction", "type": "int"},
        "save_state": {"kind": "StoreTrueAction"}, "resolution": {"kind": "StoreAction", "type": "str"},
        "mixed_precision": {"kind": "StoreAction", "type": "str", "choices": ["no", "fp16", "bf16"]}})
    good = {"learning_rate": 1e-4, "max_train_steps": 2, "save_state": True, "mixed_precision": "bf16",
            "resolution": "512,512"}
    assert unchecked_values(good, accepted) == []
    bad = {"learning_rate": "1e-4", "max_train_steps": 2.5, "save_state": "yes", "mixed_precision": "fp64",
           "resolution": 512}
    problems = " ".join(unchecked_values(bad, accepted))
    for key in bad:
        assert f"`{key}`" in problems


def test_submit_refuses_a_key_the_installed_version_would_ignore(tmp_path, tiny_model):
    old = _tagged_checkout(tmp_path / "sd-scripts", "v0.9.9", [k for k in written_keys() if k != "noise_offset"])
    service = JobService(tmp_path / "data", tmp_path / "Lora", _settings(old, tmp_path))
    cfg = tiny_config(tiny_model, "refused", engine="kohya", noise_offset=0.05, max_train_steps=2)
    with pytest.raises(SubmitError) as refused:
        service.submit(photos(tmp_path, n=3), cfg)
    message = str(refused.value)
    assert "sd-scripts v0.9.9" in message and "`noise_offset`" in message and "ignore it silently" in message
    assert service.list()[0].state == S.FAILED and "noise_offset" in service.list()[0].error
    # without that setting the same version takes the job
    job = service.submit(photos(tmp_path, n=3), cfg.replace(noise_offset=None), queue=False)
    assert job.state == S.PREPARING


def test_launch_checks_again_when_the_checkout_changed_while_the_job_waited(tmp_path, tiny_model):
    checkout = _tagged_checkout(tmp_path / "sd-scripts", "v0.10.1")
    service = JobService(tmp_path / "data", tmp_path / "Lora", _settings(checkout, tmp_path))
    job = service.submit(photos(tmp_path, n=3), tiny_config(tiny_model, "waits", engine="kohya", noise_offset=0.05,
                                                            max_train_steps=2), queue=False)
    # the user switches the checkout to an older release before the job starts
    (checkout / "train_network.py").write_text(train_network_source([k for k in written_keys()
                                                                     if k != "noise_offset"]))
    engine = KohyaEngine(service.settings)
    from lib_lora_trainer.engines.base import JobLaunch

    launch = JobLaunch(run_toml=job.folder / "run.toml", dataset_toml=job.folder / "dataset.toml", model_type="sd1",
                       job_dir=job.folder)
    with pytest.raises(EngineUnavailable, match="`noise_offset`"):
        engine.command(launch)

"""Form fields, presets, the step arithmetic, and how jobs and results look (no browser)."""

import time

import pytest

from lib_lora_trainer.config.errors import ConfigError
from lib_lora_trainer.jobs.store import Job
from lib_lora_trainer.ui import fields as F
from lib_lora_trainer.ui import job_view as V
from lib_lora_trainer.ui import params_section as P
from lib_lora_trainer.ui.result_section import result_view


def _form(preset="cpu-tiny", **changes):
    names = P.form_names()
    cfg = P.preset_config(preset)
    values = F.ui_values(names, cfg)
    for key, value in changes.items():
        values[names.index(key)] = value
    return names, values


def test_every_config_field_has_exactly_one_place_in_the_form():
    names = P.form_names()
    infos = F.field_infos()
    assert len(names) == len(set(names))
    assert set(names) | set(F.NOT_A_FORM_FIELD) == set(infos)
    advanced = {f.name for f in F.advanced_fields()}
    assert {"grad_accum", "sample_prompts", "optimizer_args", "lr_warmup", "save_every_n_steps"} <= advanced


def test_values_round_trip_through_the_form():
    cfg = P.preset_config("sd15-style", {"sample_prompts": ["a", "b"], "optimizer_args": {"weight_decay": 0.01}})
    names = P.form_names()
    values = F.ui_values(names, cfg)
    assert values[names.index("sample_prompts")] == "a\nb"
    assert values[names.index("max_train_steps")] == ""   # optional numbers are text: empty = None
    values[names.index("name")] = "style"
    rebuilt = P.build_config(names, values, "sd15-style", "base.safetensors")
    assert rebuilt.replace(name="plan", base_model="plan") == cfg


def test_form_errors_name_the_field_and_the_fix():
    names, values = _form(name="")
    with pytest.raises(ConfigError) as exc:
        P.build_config(names, values, "cpu-tiny", "m.safetensors")
    assert exc.value.field == "name" and "LoRA name" in str(exc.value)
    names, values = _form(name="x", max_train_steps="lots")
    with pytest.raises(ConfigError) as exc:
        P.build_config(names, values, "cpu-tiny", "m.safetensors")
    assert exc.value.field == "max_train_steps" and "not a number" in str(exc.value)
    names, values = _form(name="x", optimizer_args="{bad")
    with pytest.raises(ConfigError, match="optimizer_args.*JSON"):
        P.build_config(names, values, "cpu-tiny", "m.safetensors")
    names, values = _form(repeats=0)
    assert "repeats" in P.plan_text(names, values, "cpu-tiny", 16, None) and "lt-error" in P.plan_text(
        names, values, "cpu-tiny", 16, None)


def test_live_arithmetic_with_the_last_measured_speed():
    names, values = _form(repeats=100, epochs=1, batch_size=1)
    text = P.plan_text(names, values, "cpu-tiny", 16, 2.0)
    assert "16 images x 100 repeats x 1 epoch / batch 1 = 1600 steps" in text
    assert "about 13 min at the last measured speed" in text
    assert "No images yet" in P.plan_text(names, values, "cpu-tiny", 0, None)


def test_preset_switch_keeps_identity_fields():
    names, values = _form("sd15-portrait", name="mine", trigger="zyrette", repeats=7)
    new, info = P.apply_preset("cpu-tiny", names, values)
    got = dict(zip(names, new))
    assert got["name"] == "mine" and got["trigger"] == "zyrette"
    assert got["repeats"] == 2 and got["resolution"] == 64 and "Tiny model" in info
    new, _ = P.apply_preset("cpu-tiny", names, _form("sd15-portrait", name="")[1])
    assert dict(zip(names, new))["name"] == ""


def _job(tmp_path, state="running", **kw):
    folder = tmp_path / kw.pop("id", "j1")
    folder.mkdir(exist_ok=True)
    data = dict(id=folder.name, name="zyr", state=state, engine="builtin", job_dir=str(folder), config={},
                created_at=time.time(), progress={"step": 40, "total": 200, "rate_it_s": 9.5, "eta_s": 17,
                                                   "loss": 0.1234, "loss_history": [[1, 0.3], [2, 0.2], [3, 0.25]]})
    data.update(kw)
    return Job(**data)


def test_progress_loss_log_and_queue(tmp_path):
    job = _job(tmp_path)
    html = V.progress_html(job, now=1.0)
    assert "step 40/200" in html and "9.50 it/s" in html and "ETA 0:17" in html and "loss 0.1234" in html
    assert 'data-stamp="1.000"' in html and 'width:20.0%' in html
    assert "<polyline" in V.loss_svg(job.progress["loss_history"])
    (tmp_path / "j1" / "stderr.log").write_text("steps: 1%|x| 1/200\rsteps: 2%|x| 2/200\rsteps: 20%|x| 40/200")
    assert V.log_tail(job).splitlines()[-1] == "steps: 20%|x| 40/200"
    queued = _job(tmp_path, "queued", id="j2", name="<b>")
    assert "&lt;b&gt;" in V.queue_html([job, queued], "j1")
    assert V.pick_job([job, queued], None) is job
    assert V.pick_job([job, queued], V.job_label(queued)) is queued


def test_failure_banner_has_the_reason_fix_and_log(tmp_path):
    job = _job(tmp_path, "failed", error_kind="oom", error="CUDA out of memory. Tried to allocate 2 GiB")
    (tmp_path / "j1" / "stderr.log").write_text("Traceback\ntorch.OutOfMemoryError: CUDA out of memory\n")
    html = V.banner_html(job)
    assert "Out of memory" in html and "Tried to allocate" in html and "Lower the batch size" in html
    assert "OutOfMemoryError" in html
    assert "Resume" in V.banner_html(_job(tmp_path, "cancelled"))
    assert V.banner_html(_job(tmp_path, "running")) == ""


def test_result_shows_metadata_sidecar_prompt_and_test_grid(tmp_path):
    import torch

    from lib_lora_trainer.jobs.install import install_lora
    from lib_lora_trainer.lora_file.io import save_lora

    src = tmp_path / "out.safetensors"
    save_lora(src, {"lora_unet_x.lora_down.weight": torch.zeros(2, 4), "lora_unet_x.lora_up.weight": torch.zeros(4, 2),
                    "lora_unet_x.alpha": torch.tensor(2.0)}, {"ss_output_name": "zyr", "ss_network_dim": "2"})
    installed = install_lora(src, tmp_path / "Lora", "zyr", model_type="sd1", trigger="zyrette",
                             preferred_weight=0.8)
    job = _job(tmp_path, "succeeded", installed_path=str(installed))
    html, prompt, grid, report, _ = result_view(job)
    assert prompt == "<lora:zyr:0.8>, zyrette" and grid is None and report == ""
    assert "ss_network_dim" in html and "zyr.json" in html and f'data-installed="{installed}"' in html
    (tmp_path / "j1" / "test").mkdir()
    (tmp_path / "j1" / "test" / "grid_weights.png").write_bytes(b"png")
    (tmp_path / "j1" / "test" / "report.md").write_text("# Test\n")
    assert result_view(job)[2:4] == (str(tmp_path / "j1" / "test" / "grid_weights.png"), "# Test\n")
    installed.unlink()
    assert "no longer on disk" in result_view(job)[0]
    assert result_view(_job(tmp_path, "running"))[1] == ""


def test_the_tab_shows_each_preset_described_from_its_values():
    info = P.preset_description("cpu-demo")
    assert info.startswith("**Demo model on CPU (cartoon128)**: ")
    for phrase in ("15 repeats x 2 epochs at batch 4 = 120 steps", "AdamW 5e-3", "128 px", "rank 8",
                   "automatic test after training"):
        assert phrase in info, phrase
    assert "80 steps" not in info and "2e-3" not in info

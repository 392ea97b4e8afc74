"""The standalone app (`python -m lib_lora_trainer ui`): host, binding rules, API + tab in one app."""

from fastapi.testclient import TestClient

from lib_lora_trainer.cli import main
from lib_lora_trainer.hosts.base import Host, checkpoint_path, scan_checkpoints
from lib_lora_trainer.hosts.standalone import StandaloneHost
from lib_lora_trainer.ui.standalone_app import check_bind, create_app, load_js


def test_checkpoints_are_scanned_like_a1111(tmp_path):
    (tmp_path / "sub").mkdir()
    for name in ("b.safetensors", "a.ckpt", "sub/c.safetensors", "x.vae.safetensors", "notes.txt"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "tiny.config").mkdir()
    (tmp_path / "tiny.config" / "inner.safetensors").write_bytes(b"x")
    assert [t for t, _ in scan_checkpoints(tmp_path)] == ["a.ckpt", "b.safetensors", "sub/c.safetensors"]
    host = StandaloneHost(lora_dir=tmp_path / "Lora", ckpt_dir=tmp_path, data_dir=tmp_path / "data")
    assert isinstance(host, Host) and host.captioners() == {}
    assert checkpoint_path(host, "sub/c.safetensors") == str(tmp_path / "sub" / "c.safetensors")
    for bad in ("", "gone.safetensors"):
        try:
            checkpoint_path(host, bad)
            raise AssertionError("no error")
        except ValueError as exc:
            assert "Base checkpoint" in str(exc)


def test_binding_beyond_loopback_needs_credentials(capsys):
    check_bind("127.0.0.1", None)
    check_bind("0.0.0.0", [("me", "pw")])
    assert main(["ui", "--host", "0.0.0.0"]) == 2
    assert "--auth" in capsys.readouterr().err
    assert main(["ui", "--ckpt-dir", "/no/such/folder"]) == 2
    assert "--ckpt-dir" in capsys.readouterr().err


def test_one_app_serves_the_tab_and_the_api_behind_the_same_auth(tmp_path):
    host = StandaloneHost(lora_dir=tmp_path / "Lora", data_dir=tmp_path / "data")
    try:
        app = create_app(host, auth=[("me", "pw")])
        with TestClient(app) as client:
            assert client.get("/").status_code == 401
            assert client.get("/lora-trainer/v1/presets").status_code == 401
            page = client.get("/", auth=("me", "pw"))
            assert page.status_code == 200 and "Train LoRA" in page.text
            presets = client.get("/lora-trainer/v1/presets", auth=("me", "pw")).json()["presets"]
            assert any(p["id"] == "cpu-tiny" for p in presets)
            config = client.get("/config", auth=("me", "pw")).json()
            assert "loraTrainerInit" in str(config)   # the browser script rides on the load event
    finally:
        host.job_service().stop_background()
    assert load_js().startswith("() => {") and "loraTrainerSendToTxt2img" in load_js()

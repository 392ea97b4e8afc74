"""The dataset CLI as a user runs it: real subprocesses, exit codes 0 / 1 / 2."""

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

from imagegen import write_dataset

ROOT = Path(__file__).resolve().parent.parent


def cli(*args, cwd=None):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "lib_lora_trainer", *map(str, args)], cwd=cwd or ROOT,
                          env=env, capture_output=True, text=True, timeout=300)


def test_check_exit_codes_and_json(tmp_path):
    ds = write_dataset(tmp_path / "ds", n=12)
    ok = cli("dataset", "check", ds, "--trigger", "zkperson", "--json")
    assert ok.returncode == 0, ok.stderr
    data = json.loads(ok.stdout)
    assert data["images"] == 12 and data["captions"] == 12 and data["problems"] == []
    assert set(data["summary"]) >= {"errors", "warnings", "formats"}

    (ds / "img_003.txt").write_text("", encoding="utf-8")
    bad = cli("dataset", "check", ds, "--json")
    assert bad.returncode == 1
    problem = json.loads(bad.stdout)["problems"][0]
    assert set(problem) >= {"code", "severity", "path", "message", "fix"}
    assert problem["code"] == "caption_empty" and problem["path"] == "img_003.txt"

    human = cli("dataset", "check", ds)
    assert human.returncode == 1
    assert "caption_empty" in human.stdout and "img_003.txt" in human.stdout and "FIX" in human.stdout


def test_check_usage_errors_exit_2(tmp_path):
    assert cli("dataset", "check", tmp_path / "missing").returncode == 2
    r = cli("dataset", "check", tmp_path, "--resolution", "abc")
    assert r.returncode == 2
    r = cli("dataset", "check", tmp_path, "--resolution", "30")
    assert r.returncode == 2 and "resolution" in r.stderr
    (tmp_path / "x.txt").write_text("hi")
    r = cli("dataset", "check", tmp_path / "x.txt")
    assert r.returncode == 2 and "not a .zip" in r.stderr


def test_check_unsafe_zip_exit_2(tmp_path):
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("../escape.txt", "x")
    r = cli("dataset", "check", archive)
    assert r.returncode == 2 and "escape.txt" in r.stderr
    assert not (tmp_path.parent / "escape.txt").exists()


def test_prepare_prints_step_arithmetic(tmp_path):
    ds = write_dataset(tmp_path / "ds", n=16)
    r = cli("dataset", "prepare", ds, "--out", tmp_path / "out", "--trigger", "VadymPanchenko",
            "--class-token", "man", "--repeats", "100")
    assert r.returncode == 0, r.stderr
    assert "16 images x 100 repeats = 1600 steps per epoch at batch 1" in r.stdout
    assert (tmp_path / "out" / "img" / "100_VadymPanchenko man").is_dir()
    again = cli("dataset", "prepare", ds, "--out", tmp_path / "out", "--trigger", "VadymPanchenko")
    assert again.returncode == 2 and "--force" in again.stderr
    bad = cli("dataset", "prepare", ds, "--out", tmp_path / "o2", "--trigger", "a/b")
    assert bad.returncode == 2 and "trigger" in bad.stderr
    bad = cli("dataset", "prepare", ds, "--out", tmp_path / "o3", "--trigger", "x", "--resolution", "500")
    assert bad.returncode == 2 and "multiple of 64" in bad.stderr

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


def test_sample_writes_the_sample_dataset_for_check_and_prepare(tmp_path):
    out = tmp_path / "sample"
    r = cli("dataset", "sample", out)
    assert r.returncode == 0, r.stderr
    assert "16 pictures of 'zyrette'" in r.stdout and f"dataset check {out} --trigger zyrette" in r.stdout
    assert len(list(out.glob("photo_??.txt"))) == 16 and (out / "photo_08.gif").is_file()
    report = json.loads(cli("dataset", "check", out, "--trigger", "zyrette", "--json").stdout)
    codes = {p["code"] for p in report["problems"]}
    assert {"trigger_missing", "exif_rotation", "duplicate_exact", "unknown_file", "unsupported_format"} <= codes

    again = cli("dataset", "sample", out)   # never over an existing folder's files
    assert again.returncode == 2 and "not empty" in again.stderr

    clean = cli("dataset", "sample", tmp_path / "clean", "--clean", "--trigger", "mychar")
    assert clean.returncode == 0, clean.stderr
    assert (tmp_path / "clean" / "photo_01.txt").read_text(encoding="utf-8").startswith("mychar, ")
    ok = cli("dataset", "check", tmp_path / "clean", "--trigger", "mychar", "--json")
    assert ok.returncode == 0 and json.loads(ok.stdout)["problems"] == []
    assert cli("dataset", "sample", tmp_path / "x", "--trigger", "two words").returncode == 2

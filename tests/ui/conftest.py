"""The standalone app as a real subprocess, driven by Debian's chromium through Playwright."""

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path(os.environ.get("LORA_TRAINER_CHROMIUM", "/usr/bin/chromium"))
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--no-first-run", "--disable-sync", "--headless"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_http(url: str, proc: subprocess.Popen, log: Path, timeout: float = 90) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the ui server exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise RuntimeError(f"the ui server did not answer at {url} within {timeout} s:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="session")
def browser():
    if not CHROMIUM.is_file():
        pytest.skip(f"{CHROMIUM} is missing: install Debian's chromium (apt-get install -y chromium) to run "
                    "the browser tests")
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (no browser download "
                                                                 "needed: Debian's chromium is used)")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture(scope="session")
def ui_server(tmp_path_factory, tiny_model):
    """`python -m lib_lora_trainer ui` on a free port, with the tiny model as the only checkpoint."""
    base = tmp_path_factory.mktemp("ui")
    data, lora = base / "data", base / "Lora"
    port = _free_port()
    env = dict(os.environ, PYTHONPATH=str(ROOT), LORA_TRAINER_DATA_DIR=str(data), GRADIO_ANALYTICS_ENABLED="False",
               HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1")
    log = base / "server.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "lib_lora_trainer", "ui", "--port", str(port),
                                 "--lora-dir", str(lora), "--ckpt-dir", str(Path(tiny_model).parent)],
                                cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        _wait_http(url, proc, log)
        yield {"url": url, "data": data, "lora": lora, "base": base, "log": log, "model": Path(tiny_model)}
    finally:
        _stop_jobs(data)
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _stop_jobs(data: Path) -> None:
    """Leave no trainer running after a failed test (they run in their own process groups)."""
    from lib_lora_trainer.jobs import states as S
    from lib_lora_trainer.jobs.service import JobService

    service = JobService(data)
    for job in service.list():
        if job.state in (S.RUNNING, S.QUEUED, S.PREPARING):
            try:
                service.cancel(job.id, wait=True, grace_s=20)
            except Exception as exc:  # best effort in teardown
                print(f"could not stop job {job.id}: {exc}")


@pytest.fixture
def shoot():
    """shoot(page, "01-open"): a full-page screenshot in tests/ui/artifacts/."""
    ARTIFACTS.mkdir(exist_ok=True)

    def take(page, name: str) -> Path:
        path = ARTIFACTS / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path
    return take

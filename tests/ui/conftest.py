"""The standalone app as a real subprocess, driven by Debian's chromium through Playwright, once per
UI environment: gradio 3.41 (A1111's, this .venv) and gradio 4.40 (Forge Neo's, .venv-ui4 from
requirements/ui-gradio4.txt, built by `make ui4-env`). The trainer is always this .venv's Python
(LORA_TRAINER_PYTHON), as in a host whose own environment has no torch of ours.

The few page differences between the two gradio majors live in the helpers below (select_option,
open_accordion, gallery_thumbnail, wait_for_picture); the test itself is written once."""

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from process_guard import stop_strays

from browser_pages import load_lazy_pictures

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path(os.environ.get("LORA_TRAINER_CHROMIUM", "/usr/bin/chromium"))
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
# The UI environments the app is served from: id -> (gradio major, python). LORA_TRAINER_UI4_PYTHON
# points the gradio-4 run at another interpreter.
UI_ENVS = {
    "gradio3": (3, Path(sys.executable)),
    "gradio4": (4, Path(os.environ.get("LORA_TRAINER_UI4_PYTHON") or ROOT / ".venv-ui4" / "bin" / "python")),
}
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


@pytest.fixture(scope="session", params=list(UI_ENVS))
def ui_server(request, tmp_path_factory, tiny_model):
    """`python -m lib_lora_trainer ui` on a free port, with the tiny model as the only checkpoint, served
    from the UI environment of the param (gradio 3 here, gradio 4 in .venv-ui4); it trains with this
    .venv's Python."""
    major, python = UI_ENVS[request.param]
    if not python.is_file():
        pytest.skip(f"{python} is missing: `make ui4-env` builds the gradio-4 UI environment "
                    "(requirements/ui-gradio4.txt)")
    # The browser flow is timed: a process an earlier test left computing would slow its training
    # several times over on 2 cores (conftest.py has already warned about the test that left it).
    for pid, cmd in stop_strays().items():
        print(f"[{request.param}] stopped a process an earlier test left running: {pid} {cmd}")
    base = tmp_path_factory.mktemp(f"ui-{request.param}")
    data, lora = base / "data", base / "Lora"
    port = _free_port()
    env = dict(os.environ, PYTHONPATH=str(ROOT), LORA_TRAINER_DATA_DIR=str(data), GRADIO_ANALYTICS_ENABLED="False",
               HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1", LORA_TRAINER_PYTHON=sys.executable)
    log = base / "server.log"
    started = time.time()
    with open(log, "wb") as out:
        proc = subprocess.Popen([str(python), "-m", "lib_lora_trainer", "ui", "--port", str(port),
                                 "--lora-dir", str(lora), "--ckpt-dir", str(Path(tiny_model).parent)],
                                cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        _wait_http(url, proc, log)
        print(f"[{request.param}] ui server up in {time.time() - started:.1f} s")
        yield {"url": url, "data": data, "lora": lora, "base": base, "log": log, "model": Path(tiny_model),
               "gradio": major, "name": request.param}
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
def shoot(ui_server):
    """shoot(page, "01-open"): a full-page screenshot in tests/ui/artifacts/<ui env>/."""
    folder = ARTIFACTS / ui_server["name"]
    folder.mkdir(parents=True, exist_ok=True)

    def take(page, name: str) -> Path:
        path = folder / f"{name}.png"
        load_lazy_pictures(page)
        page.screenshot(path=str(path), full_page=True)
        return path
    return take


# ---- the page differences between gradio 3.41 and 4.40 ----------------------------------------------

def select_option(page, elem_id: str, option: str) -> None:
    """Pick `option` of a Dropdown. Both majors open a `ul.options` list inside the component when its
    input is clicked; gradio 4 names each item (aria-label) and puts a check mark in its text."""
    page.click(f"#{elem_id} input")
    page.wait_for_selector(f"#{elem_id} ul.options li")
    named = page.locator(f"#{elem_id} ul.options li[aria-label={_css_string(option)}]")
    (named if named.count() else page.locator(f"#{elem_id} ul.options li", has_text=option)).first.click()
    page.wait_for_function("([id, value]) => document.querySelector(`#${id} input`).value === value",
                           arg=[elem_id, option])


def open_accordion(page, elem_id: str) -> None:
    """Open a closed Accordion (its header is `.label-wrap` in both majors: a div in 3, a button in 4)."""
    page.click(f"#{elem_id} .label-wrap")


def gallery_thumbnail(page, elem_id: str, caption_prefix: str):
    """The thumbnail whose caption starts with `caption_prefix` (both majors put the caption in the
    image's alt text; gradio 4 also shows it under the picture)."""
    return page.locator(f"#{elem_id} button.thumbnail-item:has(img[alt^={_css_string(caption_prefix)}])")


def wait_for_picture(page, selector: str, timeout: float = 30_000) -> None:
    """Wait until the first <img> matching `selector` shows a picture (loaded, not broken). gradio 4
    lazy-loads pictures (loading="lazy"): an <img> below the fold has no size, so it never becomes
    "visible" to Playwright until loaded; the check loads it eagerly instead of scrolling to it."""
    page.wait_for_function(
        """(sel) => {
            const img = document.querySelector(sel);
            if (!img) return false;
            if (img.loading === 'lazy') img.loading = 'eager';
            return img.complete && img.naturalWidth > 0;
        }""", arg=selector, timeout=timeout, polling=250)


def _css_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'

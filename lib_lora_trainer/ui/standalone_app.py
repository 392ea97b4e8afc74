"""The tab without A1111: the same Blocks on a standalone host, plus the HTTP API
(/lora-trainer/v1) in one FastAPI app served by uvicorn."""

from __future__ import annotations

import ipaddress
from pathlib import Path

from lib_lora_trainer.paths import REPO_ROOT

from . import gradio_compat as compat
from .tab import TITLE, build_tab

JS_FILE = REPO_ROOT / "javascript" / "lora_trainer.js"
CSS_FILE = REPO_ROOT / "style.css"
API_PREFIX = "/lora-trainer/v1"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_bind(host: str, auth: list | None) -> None:
    """Refuse to offer training and this machine's files to the network without credentials."""
    if not is_loopback(host) and not auth:
        raise ValueError(f"--host {host}: anyone who can reach this address could train and read files on this "
                         "machine. Add --auth user:password, or keep --host 127.0.0.1.")


def load_js() -> str:
    """javascript/lora_trainer.js as a browser function run once on page load (A1111 and Forge
    load the same file as a <script> themselves)."""
    return "() => {\n" + JS_FILE.read_text(encoding="utf-8") + "\nloraTrainerInit();\n}"


def build_demo(host):
    import gradio as gr

    tab = build_tab(host)
    with gr.Blocks(title=TITLE, analytics_enabled=False, css=CSS_FILE.read_text(encoding="utf-8")) as demo:
        gr.Markdown(f"## {TITLE}", elem_id="lora_trainer_title")
        tab.render()
        demo.load(None, None, None, **compat.js(load_js()))
    compat.queue(demo, 8)
    return demo


def create_app(host, auth: list | None = None):
    """FastAPI app: the API under /lora-trainer/v1 and the tab at /. `auth`: [(user, password)]
    guards both with HTTP Basic."""
    import gradio as gr
    from fastapi import FastAPI

    from lib_lora_trainer.api.app import mount
    from lib_lora_trainer.api.auth import BasicAuth, BasicAuthMiddleware

    app = FastAPI(title=TITLE, docs_url=f"{API_PREFIX}/docs", openapi_url=f"{API_PREFIX}/openapi.json")
    if auth:
        app.add_middleware(BasicAuthMiddleware, auth=BasicAuth(auth))
    mount(app, host.job_service(), dataset_roots=host.dataset_roots(), upload_dir=host.data_dir() / "uploads",
          auth=auth or None, prefix=API_PREFIX)
    return gr.mount_gradio_app(app, build_demo(host), path="/")


def serve(host_name: str, port: int, lora_dir: Path | None, ckpt_dir: Path | None, data_dir: Path | None,
          auth: list | None) -> None:
    import uvicorn

    from lib_lora_trainer.hosts.standalone import StandaloneHost

    check_bind(host_name, auth)
    host = StandaloneHost(lora_dir=lora_dir, ckpt_dir=ckpt_dir, data_dir=data_dir,
                          exposed_as=None if is_loopback(host_name) else host_name)   # confines the tab's folders
    app = create_app(host, auth)
    print(f"Train LoRA: http://{host_name}:{port}/  (API: http://{host_name}:{port}{API_PREFIX}/docs; "
          f"LoRAs go to {host.lora_dir()}, jobs live in {host.data_dir()})", flush=True)
    try:
        uvicorn.run(app, host=host_name, port=port, log_level="warning")
    finally:
        host.job_service().stop_background()

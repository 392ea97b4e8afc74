"""The kohya sd-scripts engine in the tab: which sd-scripts the kohya engine would run (or why
none), the releases the extension installs with their state (not installed, installing with its
step, ready, broken with the reason), an Install button that starts the install in the background
(engines/sd_scripts_install.py) and a Refresh button. A folder of the user's own is set in
Settings > Train LoRA and always wins."""

from __future__ import annotations

from html import escape


def status_html(settings: dict, started=None) -> str:
    """`started`: the InstallState start_install just returned; shown until the install's own
    process has written its first state (a fraction of a second later)."""
    from lib_lora_trainer.engines.kohya import KohyaEngine
    from lib_lora_trainer.engines.sd_scripts_install import RELEASES, SdScriptsInstaller

    engine = KohyaEngine(settings)
    found = engine.locate()
    if found.checkout is not None and found.python is not None:
        from lib_lora_trainer.engines.kohya import checkout_version

        head = (f"<b>kohya engine:</b> sd-scripts {escape(checkout_version(found.checkout))} at "
                f"<code>{escape(str(found.checkout))}</code> ({escape(found.how)})")
    else:
        head = f"<b>kohya engine:</b> not usable: {escape(found.reason or 'no sd-scripts')}"
    rows = []
    notes = {r.tag: r.note for r in RELEASES}
    if settings.get("engines_dir"):
        for s in SdScriptsInstaller(settings["engines_dir"], settings).states():
            if started is not None and s.version == started.version and s.state == "not installed":
                s = started
            detail = {"installing": s.step, "broken": s.reason, "ready": s.commit}.get(s.state) or ""
            detail += f" ({s.warning})" if s.warning and s.state == "ready" else ""
            rows.append(f"<tr><td>{escape(s.version)}</td><td class='lt-install-{s.state.replace(' ', '-')}'>"
                        f"{escape(s.state)}</td><td>{escape(detail)}</td><td>{escape(notes.get(s.version, ''))}"
                        f"</td></tr>")
    table = ("<table class='lt-sd-scripts'><tr><th>release</th><th>state</th><th>detail</th><th></th></tr>"
             + "".join(rows) + "</table>") if rows else ""
    return f"<div id='lora_trainer_sd_scripts_state'>{head}{table}</div>"


def install(settings: dict, version: str) -> str:
    from lib_lora_trainer.engines.sd_scripts_install import InstallError, start_install

    try:
        started = start_install(settings["engines_dir"], version, settings)
    except (InstallError, OSError, KeyError) as exc:
        return f"<div class='lt-error'>Could not start the install: {escape(str(exc))}</div>" + status_html(settings)
    return status_html(settings, started)


def build(host):
    import gradio as gr

    from lib_lora_trainer.engines.sd_scripts_install import DEFAULT_VERSION, RELEASES

    def settings() -> dict:
        return host.job_service().settings

    with gr.Accordion("kohya sd-scripts engine", open=False, elem_id="lora_trainer_sd_scripts"):
        gr.Markdown("The **kohya** engine runs kohya-ss/sd-scripts in its own environment. Install a release here "
                    "(a git clone into the extension's data folder, its own venv and requirements; minutes, in "
                    "the background), or name a checkout of your own in Settings > Train LoRA.")
        state = gr.HTML(status_html(settings()), elem_id="lora_trainer_sd_scripts_status")
        with gr.Row():
            version = gr.Dropdown(choices=[r.tag for r in RELEASES], value=DEFAULT_VERSION,
                                  label="sd-scripts release", elem_id="lora_trainer_sd_scripts_version")
            install_button = gr.Button("Install sd-scripts", elem_id="lora_trainer_sd_scripts_install")
            refresh = gr.Button("Refresh", elem_id="lora_trainer_sd_scripts_refresh")

    install_button.click(lambda v: install(settings(), v), [version], [state])
    refresh.click(lambda: status_html(settings()), [], [state])
    return {"state": state, "refresh": refresh}

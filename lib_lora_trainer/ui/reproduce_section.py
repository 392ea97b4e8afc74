"""Reproduce from a LoRA: pick a LoRA (the Lora folder's list, or a path), then "Train again" or
"Continue from this LoRA" fills the training form with the settings recovered from its metadata
(lora_file/reproduce.py), selects the base checkpoint and the dataset folder when they are found,
and says what could not be recovered. Start training then trains it (the form is the config)."""

from __future__ import annotations

import os
from html import escape
from pathlib import Path

from lib_lora_trainer.hosts.base import folder_limit

from . import fields as F
from . import gradio_compat as compat

MAX_LISTED = 2000


def lora_choices(host) -> list[str]:
    """The .safetensors under the host's Lora folder, as paths relative to it."""
    root = Path(host.lora_dir())
    out: list[str] = []
    if not root.is_dir():
        return out
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if name.lower().endswith(".safetensors") and not name.startswith("."):
                out.append((Path(dirpath) / name).relative_to(root).as_posix())
                if len(out) >= MAX_LISTED:
                    return out
    return out


def lora_path(host, choice: str | None, typed: str | None) -> Path:
    """The file to reproduce: a typed path wins over the list. On an exposed server a typed path
    must lie inside the Lora folder or the dataset folders. ValueError says what is wrong."""
    from lib_lora_trainer import confine

    text = (typed or "").strip()
    if text:
        if folder_limit(host) is not None:
            try:
                path = confine.resolve_inside(text, [host.lora_dir(), *host.dataset_roots()], "LoRA file", "LoRA",
                                              expand_user=True)
            except confine.PathRefused as exc:
                raise ValueError(f"{exc.message}: {exc.fix}" if exc.fix else exc.message) from None
        else:
            path = Path(text).expanduser()
    elif (choice or "").strip():
        path = Path(host.lora_dir()) / choice
        if ".." in Path(choice).parts:
            raise ValueError(f"LoRA {choice!r}: pick one from the list.")
    else:
        raise ValueError("Pick a LoRA from the list or type the path of a .safetensors file.")
    if path.suffix.lower() != ".safetensors" or not path.is_file():
        raise ValueError(f"{path} is not a .safetensors file.")
    return path


def confined_weights(host, cfg):
    """On an exposed server the form's network_weights, like a typed LoRA path, must lie inside the
    Lora folder or the dataset folders (ValueError otherwise); elsewhere it is used as typed."""
    if not cfg.network_weights or folder_limit(host) is None:
        return cfg
    return cfg.replace(network_weights=str(lora_path(host, None, cfg.network_weights)))


def _job_hints(host, path: Path):
    from lib_lora_trainer.lora_file.reproduce import hints_from_jobs

    try:
        return hints_from_jobs(host.job_service().list(), path)
    except Exception:   # the job store is a hint only
        return [], []


def report_html(r, title: str | None, path: Path) -> str:
    action = "Continue from" if r.mode == "continue" else "Train again from"
    parts = [f"<p><b>{escape(action)} {escape(path.name)}</b> ({escape(r.made_by)}, "
             f"{escape(r.model_type or 'unknown model type')}): {len(r.recovered)} settings filled in. "
             "Check the form, then press <b>Start training</b>.</p>"]
    if title:
        parts.append(f"<p>Base checkpoint: {escape(title)}.</p>")
    if r.dataset.found:
        parts.append(f"<p>Dataset folder: {escape(r.dataset.found)} (press Load to see it).</p>")
    if r.not_recovered:
        items = "".join(f"<li><b>{escape(m.field)}</b>: {escape(m.reason)}</li>" for m in r.not_recovered)
        parts.append(f'<div class="lt-warning"><p>Not recovered:</p><ul>{items}</ul></div>')
    if r.notes:
        parts.append("<ul>" + "".join(f"<li>{escape(n)}</li>" for n in r.notes) + "</ul>")
    return "".join(parts)


def fill(host, choice: str | None, typed: str | None, mode: str, names: list[str]) -> dict:
    """What the form becomes: {"values": [one per name] or None, "checkpoint": title or None,
    "dataset": folder or None, "html": the report}."""
    from lib_lora_trainer.lora_file.reproduce import reproduce

    try:
        path = lora_path(host, choice, typed)
        job_roots, _ = _job_hints(host, path)
        checkpoints = host.checkpoints()
        r = reproduce(path, mode=mode, checkpoints=[p for _, p in checkpoints],
                      dataset_roots=[*job_roots, *host.dataset_roots()])
    except (OSError, ValueError) as exc:
        return {"values": None, "checkpoint": None, "dataset": None,
                "html": f'<p class="lt-error">{escape(str(exc))}</p>'}
    base = r.base_model
    title = next((t for t, p in checkpoints if base and os.path.realpath(p) == os.path.realpath(base)), None)
    return {"values": F.ui_values(names, r.config), "checkpoint": title, "dataset": r.dataset.found,
            "html": report_html(r, title, path)}


# ---- layout -----------------------------------------------------------------------------------

def build(host) -> dict:
    import gradio as gr

    with gr.Accordion("Reproduce from a LoRA", open=False, elem_id="lora_trainer_reproduce_box"):
        gr.Markdown("Fill the form with the settings a LoRA was trained with (ours or kohya sd-scripts'), "
                    "read from its metadata.")
        with gr.Row():
            lora = gr.Dropdown(choices=lora_choices(host), value=None, label="LoRA in the Lora folder",
                               elem_id="lora_trainer_reproduce_lora", scale=4)
            refresh = gr.Button("Refresh list", elem_id="lora_trainer_reproduce_refresh", scale=1)
        path = gr.Textbox(label="Or the path of a LoRA .safetensors (wins over the list)",
                          placeholder="e.g. /kohya_ss/outputs/vadym_v1.safetensors",
                          elem_id="lora_trainer_reproduce_path")
        with gr.Row():
            again = gr.Button("Train again", elem_id="lora_trainer_reproduce_again")
            cont = gr.Button("Continue from this LoRA", elem_id="lora_trainer_reproduce_continue")
        report = gr.HTML(elem_id="lora_trainer_reproduce_report")
    refresh.click(lambda current: compat.dropdown_update(lora_choices(host), current, fallback_first=False),
                  [lora], [lora])
    return {"lora": lora, "path": path, "again": again, "continue": cont, "report": report}


def wire(host, parts: dict, fields: dict, checkpoint, dataset_src) -> None:
    """The buttons fill every form field, the checkpoint dropdown and the dataset folder."""
    import gradio as gr

    from .params_section import form_names

    names = form_names()
    comps = [fields[n] for n in names]

    def handler(mode):
        def on_click(choice, typed):
            out = fill(host, choice, typed, mode, names)
            if out["values"] is None:
                return [*(gr.update() for _ in names), gr.update(), gr.update(), out["html"]]
            titles = [t for t, _ in host.checkpoints()]
            ckpt = compat.dropdown_update(titles, out["checkpoint"]) if out["checkpoint"] else gr.update()
            src = out["dataset"] if out["dataset"] else gr.update()
            return [*out["values"], ckpt, src, out["html"]]
        return on_click

    outputs = [*comps, checkpoint, dataset_src, parts["report"]]
    parts["again"].click(handler("again"), [parts["lora"], parts["path"]], outputs)
    parts["continue"].click(handler("continue"), [parts["lora"], parts["path"]], outputs)

"""The Dataset section: load a folder / .zip / upload, the quality report, a gallery with
per-image caption editing, bulk caption actions, auto-captioning, and prepare.

Every handler is a plain function of plain values (the unit tests call them directly); the
`build_*` function only lays out gradio 3.41 components and wires them.
"""

from __future__ import annotations

from html import escape
from pathlib import Path

from lib_lora_trainer.dataset.check import DatasetReport, check_dataset
from lib_lora_trainer.dataset.prepare import _NOT_FIXABLE, PrepareOptions, prepare_dataset
from lib_lora_trainer.dataset.source import open_source

from . import captions_edit as C
from .report_html import report_to_html
from .workspace import import_uploads, load_source


def error_html(message: str) -> str:
    return f'<p class="lt-error">{escape(str(message))}</p>'


def trainable_images(report: DatasetReport) -> int:
    """What prepare will keep: usable images minus exact duplicates and far too small ones."""
    dropped = {p.path for p in report.problems if p.code in _NOT_FIXABLE}
    return len([r for r in report.usable_images() if r not in dropped])


def run_check(src: str, trigger: str, resolution: float) -> tuple[str, int]:
    """(report HTML, trainable image count); never raises: a bad input is a red message."""
    if not (src or "").strip():
        return error_html("Dataset folder: enter the path of a folder of images or a .zip."), 0
    try:
        with open_source(src.strip()) as root:
            # workers=1: never fork the web UI's process (it may hold a GPU context).
            report = check_dataset(root, int(resolution or 512), (trigger or "").strip() or None, workers=1,
                                   display_root=src.strip())
    except (ValueError, OSError) as exc:
        return error_html(str(exc)), 0
    return report_to_html(report), trainable_images(report)


def gallery_items(folder: str, thumbs_dir: Path) -> tuple[list[tuple[str, str]], list[str]]:
    """Gallery value [(thumbnail, "name: caption")] and the image paths in the same order.
    Images that cannot be decoded are left out (the report lists them)."""
    if not (folder or "").strip() or not Path(folder).is_dir():
        return [], []
    value, rels = [], []
    for item in C.list_items(folder):
        try:
            thumb = C.thumbnail(item.image, thumbs_dir)
        except Exception:  # unreadable / truncated: reported by the check, not shown
            continue
        value.append((str(thumb), f"{item.rel}: {item.caption or '(no caption)'}"))
        rels.append(item.rel)
    return value, rels


def load(src: str, files, trigger: str, resolution: float, datasets_dir: Path, thumbs_dir: Path):
    """Load a path (or uploaded files when given): returns
    (folder, report html, gallery, rels, image count, message)."""
    try:
        folder = import_uploads(files, datasets_dir) if files else load_source(src, datasets_dir)
    except (ValueError, OSError) as exc:
        return src, error_html(exc), [], [], 0, ""
    report, count = run_check(str(folder), trigger, resolution)
    gallery, rels = gallery_items(str(folder), thumbs_dir)
    note = f"Loaded {folder}" + (" (a copy: edits are kept there)" if str(folder) != (src or "").strip() else "")
    return str(folder), report, gallery, rels, count, note


def select_image(rels: list[str], folder: str, index: int | None) -> tuple[str, str]:
    """(image path, caption) of the clicked picture."""
    if index is None or not rels or not 0 <= index < len(rels):
        return "", ""
    rel = rels[index]
    return rel, C.read_text(Path(folder), rel)


def save_caption(folder: str, rel: str, text: str, thumbs_dir: Path):
    """(message, gallery, rels)."""
    if not rel:
        return error_html("Caption: click a picture in the gallery first."), *gallery_items(folder, thumbs_dir)
    try:
        C.write_caption(Path(folder), rel, text)
    except (ValueError, OSError) as exc:
        return error_html(exc), *gallery_items(folder, thumbs_dir)
    return f"<p>Saved the caption of {escape(rel)}.</p>", *gallery_items(folder, thumbs_dir)


def _bulk(folder: str, thumbs_dir: Path, action, done: str):
    if not (folder or "").strip() or not Path(folder).is_dir():
        return error_html("Dataset folder: load a dataset first."), *gallery_items(folder, thumbs_dir)
    try:
        count = action(Path(folder))
    except (ValueError, OSError) as exc:
        return error_html(exc), *gallery_items(folder, thumbs_dir)
    return f"<p>{escape(done.format(count=count))}</p>", *gallery_items(folder, thumbs_dir)


def bulk_trigger(folder: str, trigger: str, old: str, thumbs_dir: Path):
    return _bulk(folder, thumbs_dir, lambda f: C.set_trigger(f, trigger, old),
                 f"Trigger {trigger!r} is now first in every caption ({{count}} captions changed).")


def bulk_find_replace(folder: str, find: str, replace: str, thumbs_dir: Path):
    return _bulk(folder, thumbs_dir, lambda f: C.find_replace(f, find, replace),
                 f"Replaced {find!r} with {replace!r} in {{count}} captions.")


def run_auto_caption(folder: str, captioner_name: str, overwrite: bool, trigger: str, captioners: dict,
                     thumbs_dir: Path):
    if not captioners:
        return error_html("Auto-caption: no captioner in this app (inside A1111 the tab uses BLIP and "
                          "DeepBooru). Write captions here or with another tool."), *gallery_items(folder, thumbs_dir)
    fn = captioners.get(captioner_name)
    if fn is None:
        return error_html(f"Auto-caption: choose one of {', '.join(captioners)}."), *gallery_items(folder, thumbs_dir)

    def action(f: Path) -> int:
        written, failures = C.auto_caption(f, fn, overwrite, (trigger or "").strip() or None)
        if failures:
            raise ValueError(f"{written} captions written; failed: " + "; ".join(failures[:5]))
        return written
    return _bulk(folder, thumbs_dir, action, f"{captioner_name}: {{count}} captions written.")


def run_prepare(folder: str, trigger: str, class_token: str, resolution: float, crop: str, repeats: float,
                prepared_root: Path) -> str:
    """Prepare into `<prepared_root>/<folder name>` (replacing its img/) and say what was done."""
    if not (folder or "").strip():
        return error_html("Dataset folder: load a dataset first.")
    if not (trigger or "").strip():
        return error_html("Trigger word: enter it before preparing (it names the image folder).")
    out = Path(prepared_root) / Path(folder).name
    try:
        result = prepare_dataset(folder, PrepareOptions(
            out=out, trigger=trigger.strip(), class_token=(class_token or "").strip() or None,
            repeats=int(repeats or 1), resolution=int(resolution or 512), crop=crop or "center",
            trigger_in_captions=True, force=True), workers=1)
    except (ValueError, OSError) as exc:
        return error_html(exc)
    rows = "".join(f"<li>{escape(rel)}: {escape(why)}</li>" for rel, why in sorted(result.skipped.items()))
    skipped = f"<p>Skipped:</p><ul>{rows}</ul>" if rows else ""
    return (f"<p>Prepared <b>{len(result.images)}</b> images ({escape(crop or 'center')} crop, "
            f"{int(resolution)} px) into <code>{escape(str(result.image_dir))}</code>. "
            f"Training prepares its own copy the same way.</p>{skipped}")


# ---- layout -----------------------------------------------------------------------------------

def build(host, fields: dict):
    """Lay out the section; config-field components go into `fields` (trigger, resolution, crop).
    Returns the components other sections need."""
    import gradio as gr

    from .fields import field_infos, make_component

    infos = field_infos()
    datasets_dir = host.data_dir() / "datasets"
    thumbs_dir = host.data_dir() / "thumbnails"
    captioners = host.captioners()

    with gr.Row():
        src = gr.Textbox(label="Dataset folder or .zip", elem_id="lora_trainer_dataset_src", scale=4,
                         placeholder="/path/to/photos")
        load_btn = gr.Button("Load", elem_id="lora_trainer_load", variant="primary", scale=1)
    with gr.Accordion("Or upload images (with .txt captions) or a .zip", open=False):
        upload = gr.File(file_count="multiple", file_types=["image", ".zip", ".txt"], elem_id="lora_trainer_upload",
                         label="Files")
    with gr.Row():
        fields["trigger"] = make_component(infos["trigger"], label="Trigger word")
        fields["resolution"] = make_component(infos["resolution"], label="Resolution")
        fields["crop"] = make_component(infos["crop"], label="Crop")
    check_btn = gr.Button("Check dataset", elem_id="lora_trainer_check")
    message = gr.HTML(elem_id="lora_trainer_dataset_message")
    report = gr.HTML(elem_id="lora_trainer_dataset_report")
    num_images = gr.Number(value=0, visible=False, precision=0, elem_id="lora_trainer_num_images")
    rels = gr.State([])

    with gr.Row():
        with gr.Column(scale=3):
            gallery = gr.Gallery(label="Images (click one to edit its caption)", columns=6, height=360,
                                 object_fit="cover", allow_preview=False, elem_id="lora_trainer_gallery")
        with gr.Column(scale=2):
            selected = gr.Textbox(label="Image", interactive=False, elem_id="lora_trainer_caption_image")
            caption = gr.Textbox(label="Caption", lines=3, elem_id="lora_trainer_caption")
            save_btn = gr.Button("Save caption", elem_id="lora_trainer_caption_save")
    with gr.Accordion("Captions: bulk actions and auto-caption", open=False, elem_id="lora_trainer_bulk"):
        with gr.Row():
            old_trigger = gr.Textbox(label="Old trigger word to replace (optional)", elem_id="lora_trainer_old_trigger")
            trigger_btn = gr.Button("Put the trigger first in every caption", elem_id="lora_trainer_bulk_trigger")
        with gr.Row():
            find = gr.Textbox(label="Find", elem_id="lora_trainer_find")
            replace = gr.Textbox(label="Replace with", elem_id="lora_trainer_replace")
            replace_btn = gr.Button("Replace in every caption", elem_id="lora_trainer_bulk_replace")
        with gr.Row():
            names = list(captioners)
            captioner = gr.Dropdown(choices=names, value=names[0] if names else None, label="Captioner",
                                    interactive=bool(names), elem_id="lora_trainer_captioner")
            overwrite = gr.Checkbox(label="Overwrite existing captions", value=False,
                                    interactive=bool(names), elem_id="lora_trainer_caption_overwrite")
            caption_btn = gr.Button("Auto-caption", interactive=bool(names), elem_id="lora_trainer_autocaption")
        if not names:
            gr.HTML('<p class="lt-note">Auto-caption is not available here: no captioning model in this app '
                    '(inside A1111 the tab uses BLIP and DeepBooru).</p>', elem_id="lora_trainer_autocaption_note")
    with gr.Row():
        prepare_btn = gr.Button("Prepare (crop and resize a copy)", elem_id="lora_trainer_prepare")
    prepare_out = gr.HTML(elem_id="lora_trainer_prepare_result")

    trig, res = fields["trigger"], fields["resolution"]
    loaded = [src, report, gallery, rels, num_images, message]
    load_btn.click(lambda s, t, r: load(s, None, t, r, datasets_dir, thumbs_dir), [src, trig, res], loaded)
    upload.upload(lambda f, t, r: load("", f, t, r, datasets_dir, thumbs_dir), [upload, trig, res], loaded)
    check_btn.click(run_check, [src, trig, res], [report, num_images])

    def on_select(rel_list, folder, evt):
        return select_image(rel_list, folder, evt.index)
    on_select.__annotations__["evt"] = gr.SelectData  # a real class: gradio reads the hint at runtime
    gallery.select(on_select, [rels, src], [selected, caption])
    edited = [message, gallery, rels]
    save_btn.click(lambda f, r, t: save_caption(f, r, t, thumbs_dir), [src, selected, caption], edited)
    trigger_btn.click(lambda f, t, o: bulk_trigger(f, t, o, thumbs_dir), [src, trig, old_trigger], edited)
    replace_btn.click(lambda f, a, b: bulk_find_replace(f, a, b, thumbs_dir), [src, find, replace], edited)
    caption_btn.click(lambda f, n, o, t: run_auto_caption(f, n, o, t, host.captioners(), thumbs_dir),
                      [src, captioner, overwrite, trig], edited)
    return {"src": src, "num_images": num_images, "report": report, "gallery": gallery,
            "prepare_btn": prepare_btn, "prepare_out": prepare_out,
            "prepared_root": host.data_dir() / "prepared"}

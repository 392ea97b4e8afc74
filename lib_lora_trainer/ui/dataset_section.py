"""The Dataset section: load a folder / .zip / upload, the quality report, a gallery with
per-image caption editing, bulk caption actions, auto-captioning, and prepare.

Every handler is a plain function of plain values (the unit tests call them directly); the
`build_*` function only lays out gradio components (3.41 or 4.40: see gradio_compat) and wires them.
"""

from __future__ import annotations

from html import escape
from pathlib import Path

from lib_lora_trainer.dataset.check import DatasetReport, check_dataset
from lib_lora_trainer.dataset.prepare import _NOT_FIXABLE, PrepareOptions, prepare_dataset
from lib_lora_trainer.dataset.source import open_source
from lib_lora_trainer.hosts.base import captioners_note, folder_limit

from . import captions_edit as C
from . import gradio_compat as compat
from .dataset_recipe import PARAMS_SECTION, PREPARE_KEYS, form_recipe, prepare_status, recipe_note, report_status
from .report_html import error_html, report_to_html, warning_html  # noqa: F401 (re-exported)
from .workspace import import_uploads, load_source, write_sample


def trainable_images(report: DatasetReport) -> int:
    """What prepare will keep: usable images minus exact duplicates and far too small ones."""
    dropped = {p.path for p in report.problems if p.code in _NOT_FIXABLE}
    return len([r for r in report.usable_images() if r not in dropped])


def _confined(folder: str, limit) -> str:
    """The folder a handler may open: unchanged without a limit (a local web UI), else its real path
    inside the dataset roots (confine.FolderLimit), or a ValueError naming them."""
    if limit is None or not (folder or "").strip():
        return folder
    return str(limit.resolve(folder))


def run_check(src: str, trigger: str, resolution: float, limit=None) -> tuple[str, int, dict | None]:
    """(report HTML, trainable image count, what it was checked with); never raises: a bad input
    is a red message (and no stamp)."""
    if not (src or "").strip():
        return error_html("Dataset folder: enter the path of a folder of images or a .zip."), 0, None
    try:
        src = _confined(src, limit)
        with open_source(src.strip()) as root:
            # workers=1: never fork the web UI's process (it may hold a GPU context).
            report = check_dataset(root, int(resolution or 512), (trigger or "").strip() or None, workers=1,
                                   display_root=src.strip())
    except (ValueError, OSError) as exc:
        return error_html(str(exc)), 0, None
    html = report_to_html(report)
    return html, trainable_images(report), {**form_recipe(trigger, resolution), "html": html}


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


def load(src: str, files, trigger: str, resolution: float, datasets_dir: Path, thumbs_dir: Path, limit=None):
    """Load a path (or uploaded files when given): returns
    (folder, report html, gallery, rels, image count, message, check stamp)."""
    try:
        folder = import_uploads(files, datasets_dir) if files else load_source(src, datasets_dir, limit)
    except (ValueError, OSError) as exc:
        return src, error_html(exc), [], [], 0, "", None
    copied = bool(files) or (src or "").strip().lower().endswith(".zip")
    note = f"Loaded {folder}" + (" (a copy: edits are kept there)" if copied else "")
    return _show(folder, trigger, resolution, thumbs_dir, note)


def _show(folder: Path, trigger: str, resolution, thumbs_dir: Path, note: str):
    report, count, stamp = run_check(str(folder), trigger, resolution)
    gallery, rels = gallery_items(str(folder), thumbs_dir)
    return str(folder), report, gallery, rels, count, f"<p>{escape(note)}</p>", stamp


def load_sample(trigger: str, resolution: float, datasets_dir: Path, thumbs_dir: Path):
    """Write the sample dataset (the demo character, with the mistakes real folders have) into a new
    folder of the workspace and load it: (folder, report html, gallery, rels, image count, message,
    check stamp, trigger word). An empty trigger word becomes the sample's own."""
    from lib_lora_trainer.demo.sample_dataset import DEMO_CLASS, DEMO_TRIGGER

    word = (trigger or "").strip() or DEMO_TRIGGER
    try:
        folder = write_sample(datasets_dir, word)
    except (ValueError, OSError) as exc:
        return "", error_html(f"Sample dataset: {exc}"), [], [], 0, "", None, trigger
    note = (f"Loaded the sample dataset into {folder}: 16 pictures of '{word}' (a {DEMO_CLASS}), with the "
            "mistakes real folders have, for the report to find and Prepare to fix.")
    return (*_show(folder, word, resolution, thumbs_dir, note), word)


def select_image(rels: list[str], folder: str, index: int | None, limit=None) -> tuple[str, str]:
    """(image path, caption) of the clicked picture."""
    if index is None or not rels or not 0 <= index < len(rels):
        return "", ""
    try:
        folder = _confined(folder, limit)
    except ValueError:
        return "", ""
    rel = rels[index]
    return rel, C.read_text(Path(folder), rel)


def save_caption(folder: str, rel: str, text: str, thumbs_dir: Path, limit=None):
    """(message, gallery, rels)."""
    try:
        folder = _confined(folder, limit)
    except ValueError as exc:
        return error_html(exc), [], []
    if not rel:
        return error_html("Caption: click a picture in the gallery first."), *gallery_items(folder, thumbs_dir)
    try:
        C.write_caption(Path(folder), rel, text)
    except (ValueError, OSError) as exc:
        return error_html(exc), *gallery_items(folder, thumbs_dir)
    return f"<p>Saved the caption of {escape(rel)}.</p>", *gallery_items(folder, thumbs_dir)


def _bulk(folder: str, thumbs_dir: Path, action, done: str, limit=None):
    try:
        folder = _confined(folder, limit)
    except ValueError as exc:
        return error_html(exc), [], []
    if not (folder or "").strip() or not Path(folder).is_dir():
        return error_html("Dataset folder: load a dataset first."), *gallery_items(folder, thumbs_dir)
    try:
        count = action(Path(folder))
    except (ValueError, OSError) as exc:
        return error_html(exc), *gallery_items(folder, thumbs_dir)
    return f"<p>{escape(done.format(count=count))}</p>", *gallery_items(folder, thumbs_dir)


def bulk_trigger(folder: str, trigger: str, old: str, thumbs_dir: Path, limit=None):
    return _bulk(folder, thumbs_dir, lambda f: C.set_trigger(f, trigger, old),
                 f"Trigger {trigger!r} is now first in every caption ({{count}} captions changed).", limit)


def bulk_find_replace(folder: str, find: str, replace: str, thumbs_dir: Path, limit=None):
    return _bulk(folder, thumbs_dir, lambda f: C.find_replace(f, find, replace),
                 f"Replaced {find!r} with {replace!r} in {{count}} captions.", limit)


def run_auto_caption(folder: str, captioner_name: str, overwrite: bool, trigger: str, captioners: dict,
                     thumbs_dir: Path, limit=None):
    try:
        folder = _confined(folder, limit)
    except ValueError as exc:
        return error_html(exc), [], []
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
                prepared_root: Path, limit=None) -> tuple[str, dict | None]:
    """Prepare into `<prepared_root>/<folder name>` (replacing its img/) and say what was done, with
    which resolution and crop. Returns (html, stamp: the values used, None on failure)."""
    if not (folder or "").strip():
        return error_html("Dataset folder: load a dataset first."), None
    try:
        folder = _confined(folder, limit)
    except ValueError as exc:
        return error_html(exc), None
    if not (trigger or "").strip():
        return error_html("Trigger word: enter it before preparing (it names the image folder)."), None
    used = form_recipe(trigger, resolution, crop, class_token, repeats)
    res = used["resolution"]
    if not isinstance(res, int) or res < 64 or res % 64:
        return error_html(f"Resolution ({PARAMS_SECTION}): {res} is not a multiple of 64; "
                          "use e.g. 512, 768 or 1024."), None
    out = Path(prepared_root) / Path(folder).name
    try:
        result = prepare_dataset(folder, PrepareOptions(
            out=out, trigger=used["trigger"], class_token=used["class_token"] or None,
            repeats=int(used["repeats"] or 1), resolution=res, crop=used["crop"],
            trigger_in_captions=True, force=True), workers=1)
    except (ValueError, OSError) as exc:
        return error_html(exc), None
    rows = "".join(f"<li>{escape(rel)}: {escape(why)}</li>" for rel, why in sorted(result.skipped.items()))
    skipped = f"<p>Skipped:</p><ul>{rows}</ul>" if rows else ""
    html = (f"<p>Prepared <b>{len(result.images)}</b> images at <b>{res} px</b>, {escape(used['crop'])} crop "
            f"(Resolution and Crop in {PARAMS_SECTION}) into <code>{escape(str(result.image_dir))}</code>. "
            f"Start training prepares its own copy the same way.</p>{skipped}")
    return html, {**{k: used[k] for k in PREPARE_KEYS}, "html": html}


# ---- layout -----------------------------------------------------------------------------------

def build(host, fields: dict):
    """Lay out the section; its config-field component (trigger) goes into `fields`. Events that
    need fields of other sections (resolution, crop, repeats, class token) are wired by `wire`.
    Returns the components other sections need."""
    import gradio as gr

    from .fields import field_infos, make_component

    infos = field_infos()
    thumbs_dir = host.data_dir() / "thumbnails"
    captioners = host.captioners()
    limit = folder_limit(host)   # on an exposed server: folders only inside the dataset roots

    with gr.Row():
        src = gr.Textbox(label="Dataset folder or .zip", elem_id="lora_trainer_dataset_src", scale=4,
                         placeholder="/path/to/photos")
        load_btn = gr.Button("Load", elem_id="lora_trainer_load", variant="primary", scale=1)
        sample_btn = gr.Button("Load the sample dataset", elem_id="lora_trainer_load_sample", scale=1)
    with gr.Accordion("Or upload images (with .txt captions) or a .zip", open=False):
        upload = gr.File(file_count="multiple", file_types=["image", ".zip", ".txt"], elem_id="lora_trainer_upload",
                         label="Files")
    fields["trigger"] = make_component(infos["trigger"], label="Trigger word")
    note = gr.HTML(elem_id="lora_trainer_dataset_recipe")
    check_btn = gr.Button("Check dataset", elem_id="lora_trainer_check")
    message = gr.HTML(elem_id="lora_trainer_dataset_message")
    report = gr.HTML(elem_id="lora_trainer_dataset_report")
    num_images = gr.Number(value=0, visible=False, precision=0, elem_id="lora_trainer_num_images")
    rels = gr.State([])
    checked = gr.State(None)    # the last report and the values it was checked with
    prepared = gr.State(None)   # the last Prepare result and the values it used

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
        names = list(captioners)
        with gr.Row(visible=bool(names)):   # hidden where the host has no captioner (Forge Neo, standalone)
            captioner = gr.Dropdown(choices=names, value=names[0] if names else None, label="Captioner",
                                    interactive=bool(names), elem_id="lora_trainer_captioner")
            overwrite = gr.Checkbox(label="Overwrite existing captions", value=False,
                                    interactive=bool(names), elem_id="lora_trainer_caption_overwrite")
            caption_btn = gr.Button("Auto-caption", interactive=bool(names), elem_id="lora_trainer_autocaption")
        if not names:
            gr.HTML(f'<p class="lt-note">Auto-caption is not available here. {escape(captioners_note(host))}</p>',
                    elem_id="lora_trainer_autocaption_note")
    with gr.Row():
        prepare_btn = gr.Button("Prepare (crop and resize a copy)", elem_id="lora_trainer_prepare")
    prepare_out = gr.HTML(elem_id="lora_trainer_prepare_result")

    trig = fields["trigger"]

    def on_select(rel_list, folder, evt):
        return select_image(rel_list, folder, evt.index, limit)
    gallery.select(compat.wants_select_data(on_select), [rels, src], [selected, caption])
    edited = [message, gallery, rels]
    save_btn.click(lambda f, r, t: save_caption(f, r, t, thumbs_dir, limit), [src, selected, caption], edited)
    trigger_btn.click(lambda f, t, o: bulk_trigger(f, t, o, thumbs_dir, limit), [src, trig, old_trigger], edited)
    replace_btn.click(lambda f, a, b: bulk_find_replace(f, a, b, thumbs_dir, limit), [src, find, replace], edited)
    caption_btn.click(lambda f, n, o, t: run_auto_caption(f, n, o, t, host.captioners(), thumbs_dir, limit),
                      [src, captioner, overwrite, trig], edited)
    return {"src": src, "load_btn": load_btn, "sample_btn": sample_btn, "upload": upload, "note": note,
            "check_btn": check_btn, "message": message, "num_images": num_images, "report": report,
            "gallery": gallery, "rels": rels, "checked": checked, "prepared": prepared,
            "prepare_btn": prepare_btn, "prepare_out": prepare_out}


def wire(host, fields: dict, parts: dict) -> None:
    """Events that read the recipe fields laid out by the parameters section (called by tab.py once
    every section is built): load, sample, check and prepare use Resolution, Crop, Repeats and Class
    token from there, say so, and are marked out of date when those change (e.g. by a preset)."""
    import gradio as gr

    datasets_dir = host.data_dir() / "datasets"
    thumbs_dir = host.data_dir() / "thumbnails"
    prepared_root = host.data_dir() / "prepared"
    limit = folder_limit(host)   # on an exposed server: folders only inside the dataset roots
    trig, cls, res, crop, rep = (fields[n] for n in ("trigger", "class_token", "resolution", "crop", "repeats"))
    p = parts
    loaded = [p["src"], p["report"], p["gallery"], p["rels"], p["num_images"], p["message"], p["checked"]]
    p["load_btn"].click(lambda s, t, r: load(s, None, t, r, datasets_dir, thumbs_dir, limit), [p["src"], trig, res],
                        loaded)
    p["upload"].upload(lambda f, t, r: load("", compat.file_paths(f), t, r, datasets_dir, thumbs_dir),
                       [p["upload"], trig, res], loaded)
    p["sample_btn"].click(lambda t, r: load_sample(t, r, datasets_dir, thumbs_dir), [trig, res], [*loaded, trig])
    p["check_btn"].click(lambda s, t, r: run_check(s, t, r, limit), [p["src"], trig, res],
                         [p["report"], p["num_images"], p["checked"]])
    p["prepare_btn"].click(
        lambda folder, t, c, r, cr, n: run_prepare(folder, t, c, r, cr, n, prepared_root, limit),
        [p["src"], trig, cls, res, crop, rep], [p["prepare_out"], p["prepared"]])

    def keep_or(value):
        return gr.update() if value is None else value

    def on_recipe(t, c, r, cr, n, checked, prepared):
        return (recipe_note(r, cr), keep_or(report_status(checked, t, r)),
                keep_or(prepare_status(prepared, t, c, r, cr, n)))
    for comp in (trig, cls, res, crop, rep):
        comp.change(on_recipe, [trig, cls, res, crop, rep, p["checked"], p["prepared"]],
                    [p["note"], p["report"], p["prepare_out"]], show_progress=compat.HIDDEN)
    # The note's first value, from the form's first values (the page is rendered from `.value`).
    p["note"].value = recipe_note(res.value, crop.value)

"""The Dataset section's handlers, called directly (no browser): load, report, captions, prepare."""

import zipfile
from pathlib import Path

from imagegen import write_dataset
from lib_lora_trainer.ui import captions_edit as C
from lib_lora_trainer.ui import dataset_section as D


def _dirs(tmp_path):
    return tmp_path / "datasets", tmp_path / "thumbs"


def test_run_check_renders_problems_escaped(tmp_path):
    ds = write_dataset(tmp_path / "ds", n=3, size=(96, 96))
    (ds / "<script>evil.txt").write_text("orphan")
    html, count, stamp = D.run_check(str(ds), "zkperson", 64)
    assert "too_few_images" in html and "caption_orphan" in html and "Checked for training at <b>64 px</b>" in html
    assert stamp["html"] == html and (stamp["trigger"], stamp["resolution"]) == ("zkperson", 64)
    assert "&lt;script&gt;evil.txt" in html and "<script>" not in html
    assert count == 3


def test_bad_input_is_a_message_naming_the_field(tmp_path):
    assert "Dataset folder" in D.run_check("", "", 512)[0]
    assert "no such file" in D.run_check(str(tmp_path / "missing"), "", 512)[0]
    assert D.run_check("", "", 512)[2] is None   # no stamp: nothing to mark out of date later
    folder, html, gallery, rels, count, _, stamp = D.load(str(tmp_path / "nope"), None, "", 512, *_dirs(tmp_path))
    assert "does not exist" in html and gallery == [] and count == 0 and stamp is None


def test_load_a_folder_in_place_and_a_zip_as_a_copy(tmp_path):
    ds = write_dataset(tmp_path / "ds", n=4, size=(96, 96))
    folder, html, gallery, rels, count, _, _ = D.load(str(ds), None, "zkperson", 64, *_dirs(tmp_path))
    assert folder == str(ds) and count == 4 and rels == [f"img_00{i}.jpg" for i in range(4)]
    assert gallery[0][1] == "img_000.jpg: zkperson, a photo number 0"
    assert all(path.endswith(".png") for path, _ in gallery)  # small PNG thumbnails, not the originals
    archive = tmp_path / "set.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for p in ds.iterdir():
            zf.write(p, f"inner/{p.name}")
    folder, html, gallery, rels, count, note, _ = D.load(str(archive), None, "zkperson", 64, *_dirs(tmp_path))
    assert folder.startswith(str(tmp_path / "datasets" / "set-")) and count == 4 and "copy" in note


def test_uploaded_files_become_one_folder(tmp_path):
    ds = write_dataset(tmp_path / "ds", n=2, size=(96, 96))
    (ds / "readme.md").write_text("ignored")
    files = sorted(str(p) for p in ds.iterdir())
    folder, html, gallery, rels, count, _, _ = D.load("", files, "zkperson", 64, *_dirs(tmp_path))
    names = sorted(p.name for p in (tmp_path / "datasets").glob("upload-*/*"))
    assert names == ["img_000.jpg", "img_000.txt", "img_001.jpg", "img_001.txt"] and count == 2


def test_select_and_save_a_caption(tmp_path):
    ds = write_dataset(tmp_path / "ds", n=3, size=(96, 96))
    _, _, _, rels, _, _, _ = D.load(str(ds), None, "zkperson", 64, *_dirs(tmp_path))
    rel, text = D.select_image(rels, str(ds), 1)
    assert (rel, text) == ("img_001.jpg", "zkperson, a photo number 1")
    msg, gallery, _ = D.save_caption(str(ds), rel, "zkperson, smiling\nsecond line", tmp_path / "thumbs")
    assert "Saved" in msg and (ds / "img_001.txt").read_text() == "zkperson, smiling second line\n"
    assert gallery[1][1] == "img_001.jpg: zkperson, smiling second line"
    assert "empty" in D.save_caption(str(ds), rel, "  ", tmp_path / "thumbs")[0]
    assert "click a picture" in D.save_caption(str(ds), "", "x", tmp_path / "thumbs")[0]
    try:
        C.write_caption(ds, "../outside.jpg", "x")
        raise AssertionError("a caption outside the folder was written")
    except ValueError:
        pass


def test_bulk_trigger_find_replace_and_auto_caption(tmp_path):
    ds = write_dataset(tmp_path / "ds", n=3, size=(96, 96), trigger="oldname")
    (ds / "img_002.txt").unlink()
    msg, gallery, _ = D.bulk_trigger(str(ds), "zyrette", "oldname", tmp_path / "thumbs")
    assert "3 captions" in msg
    assert (ds / "img_000.txt").read_text() == "zyrette, a photo number 0\n"
    assert (ds / "img_002.txt").read_text() == "zyrette\n"
    assert "one word" in D.bulk_trigger(str(ds), "two words", "", tmp_path / "thumbs")[0]
    msg, _, _ = D.bulk_find_replace(str(ds), "photo", "picture", tmp_path / "thumbs")
    assert "in 2 captions" in msg and "picture number 1" in (ds / "img_001.txt").read_text()
    msg, _, _ = D.run_auto_caption(str(ds), "fake", True, "zyrette", {"fake": lambda im: f"a {im.size[0]} px image"},
                                   tmp_path / "thumbs")
    assert "3 captions written" in msg and (ds / "img_001.txt").read_text() == "zyrette, a 96 px image\n"
    assert "no captioner" in D.run_auto_caption(str(ds), None, False, "", {}, tmp_path / "thumbs")[0]


def test_prepare_writes_a_copy_and_reports_skips(tmp_path):
    ds = write_dataset(tmp_path / "ds", n=3, size=(96, 96))
    (ds / "copy.jpg").write_bytes((ds / "img_000.jpg").read_bytes())
    html, stamp = D.run_prepare(str(ds), "zkperson", "", 64, "center", 5, tmp_path / "prepared")
    assert "Prepared <b>3</b> images at <b>64 px</b>, center crop" in html and "duplicate_exact" in html
    assert len(list((tmp_path / "prepared" / "ds" / "img" / "5_zkperson").glob("*.png"))) == 3
    assert stamp["html"] == html and stamp["resolution"] == 64
    assert "Trigger word" in D.run_prepare(str(ds), "", "", 64, "center", 5, tmp_path / "prepared")[0]
    html, stamp = D.run_prepare(str(ds), "zkperson", "", 100, "center", 5, tmp_path / "prepared")
    assert "Resolution (Model and parameters): 100 is not a multiple of 64" in html and stamp is None
    assert "--" not in html


# ---- issue 12: the tab's fixes name buttons (7), one resolution (8), the sample dataset (9) ------

def _sample_report_html(tmp_path, trigger="zyrette", resolution=512):
    from lib_lora_trainer.demo.sample_dataset import write_sample_dataset

    ds = write_sample_dataset(tmp_path / "sample")
    return D.run_check(str(ds), trigger, resolution)[0]


def test_fixes_in_the_tab_name_buttons_and_fields_not_cli_commands(tmp_path):
    from lib_lora_trainer.dataset.problems import CHECKS

    for check in CHECKS.values():
        text = check.fix_for("ui")
        assert "--" not in text and "run `" not in text and "`" not in text, (check.code, text)
    html = _sample_report_html(tmp_path, resolution=64)
    for code in ("trigger_missing", "unsupported_format", "exif_rotation", "too_small_severe", "mode_alpha"):
        assert code in html
    assert "--" not in html and "run `" not in html and "dataset prepare" not in html
    assert "&quot;Put the trigger first in every caption&quot; (Captions: bulk actions)" in html
    assert "lower &quot;Resolution&quot; (Model and parameters)" in html
    assert "Start training prepares its own copy" in html


def test_prepare_and_check_say_their_resolution_and_go_stale_when_a_preset_changes_it(tmp_path):
    from lib_lora_trainer.demo.sample_dataset import write_sample_dataset
    from lib_lora_trainer.ui import fields as F
    from lib_lora_trainer.ui import params_section as P

    ds = write_sample_dataset(tmp_path / "sample")
    names = P.form_names()
    form = dict(zip(names, F.ui_values(names, P.preset_config(P.DEFAULT_PRESET))))
    form["trigger"] = "zyrette"

    def recipe(f):
        return f["trigger"], f["class_token"], f["resolution"], f["crop"], f["repeats"]
    assert "<b>512 px</b>, <b>center</b> crop" in D.recipe_note(form["resolution"], form["crop"])
    report, _, checked = D.run_check(str(ds), form["trigger"], form["resolution"])
    html, prepared = D.run_prepare(str(ds), *recipe(form), tmp_path / "prepared")
    assert "at <b>512 px</b>" in html and "Resolution and Crop in Model and parameters" in html
    # nothing changed: the results stay as they are
    assert D.prepare_status(prepared, *recipe(form)) == html
    assert D.report_status(checked, form["trigger"], form["resolution"]) == report

    new, _ = P.apply_preset("cpu-demo", names, list(form.values()))   # what the preset dropdown does
    after = dict(zip(names, new))
    assert after["resolution"] == 128 and after["trigger"] == "zyrette"
    assert "<b>128 px</b>" in D.recipe_note(after["resolution"], after["crop"])
    stale = D.prepare_status(prepared, *recipe(after))
    assert "Prepared" not in stale and "512 px" in stale and "Resolution 128 px" in stale and f"Repeats {after['repeats']}" in stale
    assert "out of date" in stale and "Start training prepares its own copy" in stale
    stale_report = D.report_status(checked, after["trigger"], after["resolution"])
    assert stale_report.endswith(report) and "checked with Resolution 512 px" in stale_report
    assert "Resolution 128 px" in stale_report and "Check dataset" in stale_report
    # a new Prepare uses the new values and says so
    html64, prepared64 = D.run_prepare(str(ds), *recipe(after), tmp_path / "prepared")
    assert "at <b>128 px</b>" in html64 and D.prepare_status(prepared64, *recipe(after)) == html64
    from PIL import Image
    pictures = sorted((tmp_path / "prepared" / "sample" / "img").glob("*/*.png"))
    assert pictures and all(Image.open(p).size == (128, 128) for p in pictures)
    assert D.prepare_status(None, *recipe(after)) is None and D.report_status(None, "x", 64) is None


def test_start_prepares_the_job_at_the_resolution_the_form_says_now(tmp_path):
    """Start submits the source folder with the form's config; the job service prepares its own copy
    at cfg.resolution (jobs/submit.py), so an earlier Prepare at another resolution cannot leak in."""
    from lib_lora_trainer.jobs.service import SubmitError
    from lib_lora_trainer.ui import fields as F
    from lib_lora_trainer.ui import params_section as P
    from lib_lora_trainer.ui import train_section as T

    names = P.form_names()
    values = F.ui_values(names, P.preset_config("cpu-demo", {"trigger": "zyrette"}))
    values[names.index("name")] = "mine"
    got = {}

    class Service:
        def submit(self, folder, cfg, crop):
            got.update(folder=folder, resolution=cfg.resolution, crop=crop)
            raise SubmitError("stop here")

    class Host:
        def checkpoints(self):
            return [("m", str(tmp_path / "m.safetensors"))]

        def job_service(self):
            return Service()

    T.start(Host(), str(tmp_path / "photos"), "m", "cpu-demo", names, values)
    assert got == {"folder": str(tmp_path / "photos"), "resolution": 128, "crop": "center"}


def test_load_the_sample_dataset_into_the_workspace(tmp_path):
    datasets, thumbs = _dirs(tmp_path)
    folder, html, gallery, rels, count, note, stamp, trigger = D.load_sample("", 512, datasets, thumbs)
    assert folder.startswith(str(datasets / "sample-")) and trigger == "zyrette"
    assert "trigger_missing" in html and "photo_09.txt" in html and stamp["trigger"] == "zyrette"
    assert count == 16 and len(rels) == len(gallery) >= 16 and "sample dataset" in note
    # a trigger already typed is the one the sample's captions use; every load is a new folder
    folder2, html2, *_, trigger2 = D.load_sample("mychar", 64, datasets, thumbs)
    assert folder2 != folder and trigger2 == "mychar"
    assert (Path(folder2) / "photo_01.txt").read_text(encoding="utf-8").startswith("mychar, ")
    assert "Checked for training at <b>64 px</b>" in html2

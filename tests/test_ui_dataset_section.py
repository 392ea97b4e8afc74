"""The Dataset section's handlers, called directly (no browser): load, report, captions, prepare."""

import zipfile

from imagegen import write_dataset
from lib_lora_trainer.ui import captions_edit as C
from lib_lora_trainer.ui import dataset_section as D


def _dirs(tmp_path):
    return tmp_path / "datasets", tmp_path / "thumbs"


def test_run_check_renders_problems_escaped(tmp_path):
    ds = write_dataset(tmp_path / "ds", n=3, size=(96, 96))
    (ds / "<script>evil.txt").write_text("orphan")
    html, count = D.run_check(str(ds), "zkperson", 64)
    assert "too_few_images" in html and "caption_orphan" in html
    assert "&lt;script&gt;evil.txt" in html and "<script>" not in html
    assert count == 3


def test_bad_input_is_a_message_naming_the_field(tmp_path):
    assert "Dataset folder" in D.run_check("", "", 512)[0]
    assert "no such file" in D.run_check(str(tmp_path / "missing"), "", 512)[0]
    folder, html, gallery, rels, count, _ = D.load(str(tmp_path / "nope"), None, "", 512, *_dirs(tmp_path))
    assert "does not exist" in html and gallery == [] and count == 0


def test_load_a_folder_in_place_and_a_zip_as_a_copy(tmp_path):
    ds = write_dataset(tmp_path / "ds", n=4, size=(96, 96))
    folder, html, gallery, rels, count, _ = D.load(str(ds), None, "zkperson", 64, *_dirs(tmp_path))
    assert folder == str(ds) and count == 4 and rels == [f"img_00{i}.jpg" for i in range(4)]
    assert gallery[0][1] == "img_000.jpg: zkperson, a photo number 0"
    assert all(path.endswith(".png") for path, _ in gallery)  # small PNG thumbnails, not the originals
    archive = tmp_path / "set.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for p in ds.iterdir():
            zf.write(p, f"inner/{p.name}")
    folder, html, gallery, rels, count, note = D.load(str(archive), None, "zkperson", 64, *_dirs(tmp_path))
    assert folder.startswith(str(tmp_path / "datasets" / "set-")) and count == 4 and "copy" in note


def test_uploaded_files_become_one_folder(tmp_path):
    ds = write_dataset(tmp_path / "ds", n=2, size=(96, 96))
    (ds / "readme.md").write_text("ignored")
    files = sorted(str(p) for p in ds.iterdir())
    folder, html, gallery, rels, count, _ = D.load("", files, "zkperson", 64, *_dirs(tmp_path))
    names = sorted(p.name for p in (tmp_path / "datasets").glob("upload-*/*"))
    assert names == ["img_000.jpg", "img_000.txt", "img_001.jpg", "img_001.txt"] and count == 2


def test_select_and_save_a_caption(tmp_path):
    ds = write_dataset(tmp_path / "ds", n=3, size=(96, 96))
    _, _, _, rels, _, _ = D.load(str(ds), None, "zkperson", 64, *_dirs(tmp_path))
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
    html = D.run_prepare(str(ds), "zkperson", "", 64, "center", 5, tmp_path / "prepared")
    assert "Prepared <b>3</b> images" in html and "duplicate_exact" in html
    assert len(list((tmp_path / "prepared" / "ds" / "img" / "5_zkperson").glob("*.png"))) == 3
    assert "Trigger word" in D.run_prepare(str(ds), "", "", 64, "center", 5, tmp_path / "prepared")

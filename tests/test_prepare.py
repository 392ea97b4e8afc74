"""`dataset prepare`: the kohya layout, image fixes, captions, and never touching the source."""

import json
import zipfile

import numpy as np
import pytest
from PIL import Image

from imagegen import schematic_face, textured, tree_digest, write_dataset
from lib_lora_trainer.dataset.crop import largest_face, square_box
from lib_lora_trainer.dataset.prepare import PrepareError, PrepareOptions, prepare_dataset


def opts(out, **kw):
    base = dict(out=out, trigger="zkperson")
    base.update(kw)
    return PrepareOptions(**base)


def test_kohya_layout_images_and_captions(tmp_path):
    src = write_dataset(tmp_path / "src", n=12)
    before = tree_digest(src)
    res = prepare_dataset(src, opts(tmp_path / "out", class_token="man", repeats=100), workers=1)
    folder = tmp_path / "out" / "img" / "100_zkperson man"
    assert res.image_dir == folder and folder.is_dir()
    assert (tmp_path / "out" / "log").is_dir() and (tmp_path / "out" / "model").is_dir()
    pngs = sorted(folder.glob("*.png"))
    assert len(pngs) == 12
    for p in pngs:
        with Image.open(p) as im:
            assert im.mode == "RGB" and im.size == (512, 512)
        assert p.with_suffix(".txt").read_text(encoding="utf-8").startswith("zkperson, a photo number")
    assert tree_digest(src) == before, "the source must never be modified"
    assert res.step_sentence() == "12 images x 100 repeats = 1200 steps per epoch at batch 1"
    manifest = json.loads((tmp_path / "out" / "prepare.json").read_text())
    assert manifest["folder"] == "100_zkperson man" and len(manifest["images"]) == 12


def test_fixes_rotation_alpha_modes_formats_and_encodings(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    # A phone photo stored sideways: top half red once EXIF orientation 6 is applied.
    upright = Image.new("RGB", (600, 800), (0, 0, 255))
    upright.paste((255, 0, 0), (0, 0, 600, 400))
    exif = Image.Exif()
    exif[0x0112] = 6
    upright.rotate(90, expand=True).save(src / "phone.jpg", exif=exif, quality=95)
    cut = Image.new("RGBA", (600, 600), (0, 0, 0, 0))
    cut.paste((0, 255, 0, 255), (300, 0, 600, 600))
    cut.save(src / "cutout.png")
    textured(1).save(src / "anim.gif")
    textured(2).convert("CMYK").save(src / "print.jpg")
    (src / "anim.txt").write_bytes("caf\xe9 au lait".encode("cp1252"))
    (src / "print.txt").write_text("zkperson\nsecond line", encoding="utf-8")
    prepare_dataset(src, opts(tmp_path / "out", trigger_in_captions=True), workers=1)
    out = tmp_path / "out" / "img" / "100_zkperson"
    phone = np.asarray(Image.open(out / "phone.png"))
    assert phone[20, 256, 0] > 200 and phone[20, 256, 2] < 60        # top is red
    assert phone[490, 256, 2] > 200 and phone[490, 256, 0] < 60      # bottom is blue
    flat = np.asarray(Image.open(out / "cutout.png"))
    assert tuple(flat[256, 10]) == (255, 255, 255)                   # transparent -> white, not black
    assert tuple(flat[256, 500]) == (0, 255, 0)
    assert Image.open(out / "anim.png").mode == "RGB"
    assert (out / "anim.txt").read_text(encoding="utf-8").strip() == "zkperson, café au lait"
    assert (out / "print.txt").read_text(encoding="utf-8").strip() == "zkperson, second line"
    assert (out / "cutout.txt").read_text(encoding="utf-8").strip() == "zkperson"


def test_trigger_first_and_deduplicated(tmp_path):
    src = write_dataset(tmp_path / "src", n=2)
    (src / "img_000.txt").write_text("a man, zkperson, outdoors", encoding="utf-8")
    prepare_dataset(src, opts(tmp_path / "out", trigger_in_captions=True), workers=1)
    txt = (tmp_path / "out" / "img" / "100_zkperson" / "img_000.txt").read_text(encoding="utf-8")
    assert txt.strip() == "zkperson, a man, outdoors"


def test_skips_broken_duplicate_and_far_too_small(tmp_path):
    src = write_dataset(tmp_path / "src", n=3)
    (src / "broken.jpg").write_bytes(b"not an image")
    (src / "img_000 copy.jpg").write_bytes((src / "img_000.jpg").read_bytes())
    textured(9, (100, 100)).save(src / "tiny.jpg")
    res = prepare_dataset(src, opts(tmp_path / "out"), workers=1)
    assert res.skipped == {"broken.jpg": "unreadable", "img_000 copy.jpg": "duplicate_exact",
                           "tiny.jpg": "too_small_severe"}
    assert len(res.images) == 3


def test_crop_none_keeps_aspect_and_only_shrinks(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    textured(1, (1200, 800)).save(src / "wide.jpg")
    textured(2, (600, 520)).save(src / "small.jpg")
    prepare_dataset(src, opts(tmp_path / "out", crop="none"), workers=1)
    out = tmp_path / "out" / "img" / "100_zkperson"
    assert Image.open(out / "wide.png").size == (768, 512)
    assert Image.open(out / "small.png").size == (591, 512)


def test_face_crop_centres_on_the_face(tmp_path):
    # A generated face the bundled Haar cascade finds, placed far right in a wide frame.
    face = schematic_face(200)
    canvas = Image.new("RGB", (1200, 600), (235, 235, 235))
    canvas.paste(face, (960, 175))
    box = largest_face(canvas)
    assert box is not None, "the cascade should find the generated face"
    assert 960 <= box[0] + box[2] / 2 <= 1160
    # And no face where there is none.
    assert largest_face(Image.new("RGB", (640, 480), (235, 235, 235))) is None
    src = tmp_path / "src"
    src.mkdir()
    canvas.save(src / "wide.png")
    res = prepare_dataset(src, opts(tmp_path / "out", crop="face"), workers=1)
    assert any(a.startswith("face at") for a in res.images[0].actions)
    assert any("at 600,0" in a for a in res.images[0].actions), res.images[0].actions  # right-most square


def test_square_box_clamps_to_edges():
    assert square_box(1200, 600, 1150, 300) == (600, 0, 1200, 600)
    assert square_box(1200, 600, 10, 300) == (0, 0, 600, 600)
    assert square_box(600, 1200, 300, 600) == (0, 300, 600, 900)


def test_refuses_to_write_into_source_or_over_non_empty_out(tmp_path):
    src = write_dataset(tmp_path / "src", n=2)
    with pytest.raises(PrepareError, match="inside the source"):
        prepare_dataset(src, opts(src / "out"), workers=1)
    with pytest.raises(PrepareError, match="inside the source"):
        prepare_dataset(src, opts(src), workers=1)
    with pytest.raises(PrepareError, match="inside --out"):
        prepare_dataset(src, opts(tmp_path), workers=1)
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("mine")
    with pytest.raises(PrepareError, match="not empty"):
        prepare_dataset(src, opts(busy), workers=1)
    prepare_dataset(src, opts(busy, force=True), workers=1)
    assert (busy / "keep.txt").read_text() == "mine"
    # --force replaces img/ only: a second run with another trigger leaves no stale folder.
    prepare_dataset(src, opts(busy, trigger="other", force=True), workers=1)
    assert [p.name for p in (busy / "img").iterdir()] == ["100_other"]


def test_zip_source(tmp_path):
    src = write_dataset(tmp_path / "src", n=3)
    archive = tmp_path / "photos.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for p in sorted(src.iterdir()):
            zf.write(p, f"photos/{p.name}")
    res = prepare_dataset(archive, opts(tmp_path / "out"), workers=1)
    assert len(res.images) == 3
    assert sorted(p.name for p in res.image_dir.glob("*.png")) == ["img_000.png", "img_001.png", "img_002.png"]


def test_name_collisions_from_nested_folders(tmp_path):
    src = tmp_path / "src"
    write_dataset(src / "a", n=1)
    write_dataset(src / "b", n=1, start_seed=5)
    res = prepare_dataset(src, opts(tmp_path / "out"), workers=1)
    assert sorted(i.image.rsplit("/", 1)[1] for i in res.images) == ["img_000-2.png", "img_000.png"]

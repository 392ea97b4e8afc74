"""Every dataset check, each triggered by a generated bad input (and absent on good input)."""

import os
import struct
import zlib

import pytest
from PIL import Image, ImageFilter

from imagegen import textured, write_dataset
from lib_lora_trainer.dataset.check import check_dataset
from lib_lora_trainer.dataset.hashing import BLUR_THRESHOLD, laplacian_variance
from lib_lora_trainer.dataset.problems import CHECKS, Problem


def codes(report, path=None):
    return {p.code for p in report.problems if path is None or p.path == path}


@pytest.fixture
def good(tmp_path):
    return write_dataset(tmp_path / "ds", n=12)


def test_clean_dataset_has_no_problems(good):
    report = check_dataset(good, 512, "zkperson", workers=1)
    assert report.problems == []
    assert len(report.scan.images) == 12 and len(report.scan.captions) == 12
    assert report.to_dict()["summary"]["errors"] == 0


def test_every_problem_code_has_a_fix_and_a_severity():
    for check in CHECKS.values():
        assert check.severity in ("error", "warning")
        assert len(check.fix) > 20


def test_zero_byte_unreadable_truncated(good):
    (good / "empty.jpg").write_bytes(b"")
    (good / "junk.jpg").write_bytes(os.urandom(4000))
    data = (good / "img_000.jpg").read_bytes()
    (good / "cut.jpg").write_bytes(data[: len(data) // 2])
    r = check_dataset(good, 512, workers=1)
    assert "zero_byte" in codes(r, "empty.jpg")
    assert "unreadable" in codes(r, "junk.jpg")
    assert "truncated" in codes(r, "cut.jpg")
    assert all(p.severity == "error" for p in r.problems if p.path in ("empty.jpg", "junk.jpg", "cut.jpg"))


def test_unsupported_and_mixed_formats(good):
    textured(99).save(good / "a.gif")
    textured(98).save(good / "b.tiff")
    textured(97).save(good / "c.png")
    r = check_dataset(good, 512, workers=1)
    assert "unsupported_format" in codes(r, "a.gif")
    assert "unsupported_format" in codes(r, "b.tiff")
    assert "unsupported_format" not in codes(r, "c.png")
    mixed = [p for p in r.problems if p.code == "mixed_formats"]
    assert mixed and mixed[0].severity == "warning" and "JPEG" in mixed[0].message


def test_sizes_and_aspect(good):
    textured(50, (400, 400)).save(good / "small.jpg")
    textured(51, (200, 300)).save(good / "tiny.jpg")
    textured(52, (1600, 600)).save(good / "wide.jpg")
    r = check_dataset(good, 512, workers=1)
    assert codes(r, "small.jpg") >= {"too_small"} and "too_small_severe" not in codes(r, "small.jpg")
    assert "too_small_severe" in codes(r, "tiny.jpg")
    assert "extreme_aspect" in codes(r, "wide.jpg")
    assert [p.severity for p in r.problems if p.code == "too_small_severe"] == ["error"]


def test_exact_and_near_duplicates_name_both_files(good):
    (good / "img_000 (copy).jpg").write_bytes((good / "img_000.jpg").read_bytes())
    Image.open(good / "img_001.jpg").resize((500, 500)).save(good / "img_001_small.jpg", quality=70)
    r = check_dataset(good, 512, workers=1)
    exact = [p for p in r.problems if p.code == "duplicate_exact"]
    assert len(exact) == 1 and exact[0].path == "img_000 (copy).jpg" and exact[0].related == ["img_000.jpg"]
    near = [p for p in r.problems if p.code == "duplicate_near"]
    assert len(near) == 1 and {near[0].path, *near[0].related} == {"img_001.jpg", "img_001_small.jpg"}


def test_blur_threshold_separates_sharp_from_blurred():
    # The documented threshold: sharp generated photos score well above it, a 2 px blur below.
    for seed in range(8):
        img = textured(seed, (640, 640)).convert("L")
        assert laplacian_variance(img) > 3 * BLUR_THRESHOLD
        assert laplacian_variance(img.filter(ImageFilter.GaussianBlur(5))) < BLUR_THRESHOLD


def test_blurry_image_reported(good):
    textured(60).filter(ImageFilter.GaussianBlur(6)).save(good / "soft.jpg")
    r = check_dataset(good, 512, workers=1)
    assert codes(r, "soft.jpg") >= {"blurry"}
    assert "blurry" not in codes(r, "img_000.jpg")


def test_caption_problems(good):
    (good / "img_000.txt").unlink()
    (good / "img_001.txt").write_text("   \n", encoding="utf-8")
    (good / "img_002.txt").write_bytes("zkperson, caf\xe9".encode("cp1252"))
    (good / "img_003.txt").write_text("a photo without the word\n", encoding="utf-8")
    (good / "img_004.txt").write_text("zkperson, first line\nsecond line\n", encoding="utf-8")
    (good / "lonely.txt").write_text("zkperson\n", encoding="utf-8")
    r = check_dataset(good, 512, "zkperson", workers=1)
    assert "caption_missing" in codes(r, "img_000.jpg")
    assert "caption_empty" in codes(r, "img_001.txt")
    assert "caption_not_utf8" in codes(r, "img_002.txt")
    assert "trigger_missing" in codes(r, "img_003.txt")
    assert "caption_multiline" in codes(r, "img_004.txt")
    assert "caption_orphan" in codes(r, "lonely.txt")
    assert {p.code for p in r.errors} == {"caption_empty", "caption_not_utf8"}


def test_trigger_is_matched_as_a_whole_word_case_insensitively(good):
    (good / "img_000.txt").write_text("ZKPerson in a park\n", encoding="utf-8")
    (good / "img_001.txt").write_text("zkpersonality test\n", encoding="utf-8")
    r = check_dataset(good, 512, "zkperson", workers=1)
    assert "trigger_missing" not in codes(r, "img_000.txt")
    assert "trigger_missing" in codes(r, "img_001.txt")


def test_caption_length_counts_clip_tokens_not_words(good):
    # 40 words, but rare long words split into several BPE tokens each: > 75 tokens.
    words = ["zkperson"] + ["xylophonequartzjumbled"] * 39
    (good / "img_000.txt").write_text(", ".join(words), encoding="utf-8")
    # 70 common words: 70 tokens, not over the limit.
    (good / "img_001.txt").write_text(" ".join(["zkperson"] + ["photo"] * 69), encoding="utf-8")
    r = check_dataset(good, 512, workers=1)
    long = [p for p in r.problems if p.code == "caption_too_long"]
    assert [p.path for p in long] == ["img_000.txt"]
    assert int(long[0].message.split()[0]) > 75


def test_too_few_images_and_no_images(tmp_path):
    few = write_dataset(tmp_path / "few", n=4)
    r = check_dataset(few, 512, workers=1)
    assert codes(r, ".") == {"too_few_images"} and not r.errors
    empty = tmp_path / "none"
    empty.mkdir()
    (empty / "readme.md").write_text("hi")
    r = check_dataset(empty, 512, workers=1)
    assert "no_images" in {p.code for p in r.errors}


def test_exif_rotation_and_colour_modes(good):
    exif = Image.Exif()
    exif[0x0112] = 6
    textured(70).save(good / "phone.jpg", exif=exif)
    textured(71).convert("CMYK").save(good / "print.jpg")
    textured(72).convert("P").save(good / "palette.png")
    rgba = textured(73).convert("RGBA")
    rgba.putalpha(128)
    rgba.save(good / "alpha.png")
    textured(74).convert("L").save(good / "gray.png")
    import numpy as np
    deep = (np.asarray(textured(75).convert("L"), dtype=np.uint16) * 257)
    Image.fromarray(deep).save(good / "deep.png")
    r = check_dataset(good, 512, workers=1)
    assert "exif_rotation" in codes(r, "phone.jpg")
    assert "mode_cmyk" in codes(r, "print.jpg")
    assert "mode_palette" in codes(r, "palette.png")
    assert "mode_alpha" in codes(r, "alpha.png")
    assert "mode_grayscale" in codes(r, "gray.png")
    assert "mode_16bit" in codes(r, "deep.png")
    assert "mode_16bit" not in codes(r, "gray.png")


def _png_header_only(path, width, height):
    """A PNG whose header claims width x height; no pixel data needs decoding to see that."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 16))
                     + chunk(b"IEND", b""))


def test_decompression_bomb_refused_without_decoding(good):
    _png_header_only(good / "bomb.png", 9000, 9000)          # 81 MP: over our 50 MP limit
    _png_header_only(good / "megabomb.png", 40000, 40000)    # over Pillow's own hard limit too
    r = check_dataset(good, 512, workers=1)
    assert "decompression_bomb" in codes(r, "bomb.png")
    assert "decompression_bomb" in codes(r, "megabomb.png")
    assert "81 megapixels" in next(p.message for p in r.problems if p.path == "bomb.png")


def test_symlinks_and_unknown_files(good, tmp_path):
    outside = tmp_path / "outside.jpg"
    textured(80).save(outside)
    os.symlink(outside, good / "link.jpg")
    os.symlink(tmp_path, good / "linkdir")
    (good / "notes.docx").write_bytes(b"PK..")
    r = check_dataset(good, 512, workers=1)
    assert "symlink_skipped" in codes(r, "link.jpg") and "symlink_skipped" in codes(r, "linkdir")
    assert "link.jpg" not in r.scan.images
    assert "unknown_file" in codes(r, "notes.docx")


def test_nested_kohya_layout_is_scanned(tmp_path):
    write_dataset(tmp_path / "img" / "100_zkperson man", n=11)
    r = check_dataset(tmp_path, 512, "zkperson", workers=1)
    assert len(r.scan.images) == 11 and not r.problems
    assert r.scan.images[0].startswith("img/100_zkperson man/")


def test_parallel_and_serial_inspection_agree(tmp_path):
    ds = write_dataset(tmp_path / "ds", n=60, size=(256, 256))
    serial = check_dataset(ds, 256, workers=1)
    parallel = check_dataset(ds, 256, workers=2)
    assert [p.to_dict() for p in serial.problems] == [p.to_dict() for p in parallel.problems]
    assert {k: v.phash for k, v in serial.infos.items()} == {k: v.phash for k, v in parallel.infos.items()}


def test_overlong_path_is_a_clear_error_not_a_crash(tmp_path):
    from lib_lora_trainer.dataset.source import SourceError, open_source
    with pytest.raises(SourceError, match="not a usable path"):
        with open_source(tmp_path / ("x" * 300)):
            pass


def test_each_fix_is_written_once_and_worded_for_the_cli_and_the_tab():
    from lib_lora_trainer.dataset.problems import ACTIONS, AUDIENCES

    used = set()
    for check in CHECKS.values():
        assert set(check.actions) <= set(ACTIONS), check.code
        used |= set(check.actions)
        cli, ui = check.fix_for("cli"), check.fix_for("ui")
        assert "{" not in cli + ui and check.fix == cli
        assert (cli == ui) == (not check.actions), check.code   # only the action's words differ
    assert used == set(ACTIONS) and AUDIENCES == ("cli", "ui")
    assert "`dataset prepare --trigger-in-captions`" in CHECKS["trigger_missing"].fix_for("cli")
    assert "--resolution" in CHECKS["too_small_severe"].fix_for("cli")
    assert '"Put the trigger first in every caption"' in CHECKS["trigger_missing"].fix_for("ui")
    with pytest.raises(ValueError, match="audience"):
        CHECKS["trigger_missing"].fix_for("api")
    d = Problem("trigger_missing", "a.txt", "m").to_dict()
    assert d["actions"] == ["trigger_first"] and d["fix"] == CHECKS["trigger_missing"].fix_for("cli")

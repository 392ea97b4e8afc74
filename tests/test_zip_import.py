"""Tests for lib_lora_trainer.dataset.zip_import: hostile archives are rejected whole and leave nothing behind."""

from __future__ import annotations

import contextlib
import io
import os
import stat
import struct
import zipfile
from pathlib import Path

import pytest

from lib_lora_trainer.dataset import zip_import as zi
from lib_lora_trainer.dataset.zip_import import UnsafeArchiveError, ZipLimits, extract_zip_safely


@pytest.fixture
def box(tmp_path):
    """dest_dir inside a parent folder; the archive lives next to the parent."""
    dest = tmp_path / "parent" / "dest"
    dest.mkdir(parents=True)
    return tmp_path, dest


def make_zip(path: Path, entries, compression=zipfile.ZIP_DEFLATED) -> Path:
    """entries: (name or ZipInfo, bytes)."""
    with zipfile.ZipFile(path, "w", compression) as zf:
        for name, data in entries:
            zf.writestr(name, data)
    return path


def snapshot(root: Path):
    return sorted((str(p.relative_to(root)), p.is_dir()) for p in root.rglob("*"))


def assert_rejected(box, zip_path, match, limits=ZipLimits(), monkeypatch=None, before_write=True):
    """Extraction raises, dest stays empty, nothing else under the sandbox changes.

    before_write: the central directory shows the problem, so nothing may even be attempted.
    """
    root, dest = box
    before = snapshot(root)
    if before_write and monkeypatch is not None:
        def no_write(*a, **k):
            raise AssertionError("wrote an entry before rejecting the archive")
        monkeypatch.setattr(zi, "_write_entry", no_write)
    with pytest.raises(UnsafeArchiveError, match=match) as err:
        extract_zip_safely(zip_path, dest, limits)
    assert list(dest.iterdir()) == []
    assert snapshot(root) == before
    assert zip_path.name in str(err.value) and "Fix:" in str(err.value)
    return err.value


def patch_headers(data: bytes, local_off: int, central_off: int, fmt: str, value, index: int = 0) -> bytes:
    """Overwrite one field in the index-th entry's local header and central directory record."""
    buf = bytearray(data)
    for sig, off in ((b"PK\x03\x04", local_off), (b"PK\x01\x02", central_off)):
        pos = -1
        for _ in range(index + 1):
            pos = buf.index(sig, pos + 1)
        struct.pack_into(fmt, buf, pos + off, value)
    return bytes(buf)


# ---------------------------------------------------------------- good archive


def test_extracts_nested_files_and_skips_junk(box, tmp_path):
    root, dest = box
    wild = zipfile.ZipInfo("sub/deeper/c.png")
    wild.external_attr = (stat.S_IFREG | 0o4777) << 16  # setuid + world-writable must not survive
    zp = make_zip(tmp_path / "ok.zip", [
        ("a.png", b"png-a"),
        ("a.txt", b"a caption"),
        (zipfile.ZipInfo("sub/"), b""),
        ("sub/b.txt", b"b caption"),
        (wild, b"png-c" * 1000),
        ("win\\d.txt", b"backslash separator"),
        ("__MACOSX/._a.png", b"junk"),
        ("._a.png", b"junk"),
        ("sub/.DS_Store", b"junk"),
        ("Thumbs.db", b"junk"),
        ("sub/desktop.ini", b"junk"),
    ])
    out = extract_zip_safely(zp, dest)
    expected = {"a.png": b"png-a", "a.txt": b"a caption", "sub/b.txt": b"b caption",
                "sub/deeper/c.png": b"png-c" * 1000, "win/d.txt": b"backslash separator"}
    assert sorted(p.relative_to(dest).as_posix() for p in out) == sorted(expected)
    on_disk = {p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file()}
    assert on_disk == set(expected)
    for rel, data in expected.items():
        assert (dest / rel).read_bytes() == data
        if os.name == "posix":
            assert stat.S_IMODE((dest / rel).stat().st_mode) == 0o644
    assert not (root / "parent" / "a.png").exists()


def test_small_highly_compressible_entry_is_allowed(box, tmp_path):
    # The ratio cap only applies above 1 MiB: short captions compress far beyond 200x.
    _, dest = box
    zp = make_zip(tmp_path / "small.zip", [("blank.txt", b"\0" * (1024 * 1024))])
    assert [p.name for p in extract_zip_safely(zp, dest)] == ["blank.txt"]


@pytest.mark.skipif(os.name != "posix", reason="unix permission bits")
def test_files_are_0644_whatever_the_umask(box, tmp_path):
    _, dest = box
    zp = make_zip(tmp_path / "ok.zip", [("a.png", b"x")])
    old = os.umask(0o077)
    try:
        (out,) = extract_zip_safely(zp, dest)
    finally:
        os.umask(old)
    assert stat.S_IMODE(out.stat().st_mode) == 0o644


# ---------------------------------------------------------------- names


@pytest.mark.parametrize("name, match", [
    ("../evil.txt", r"'\.\.' segment"),
    ("..", r"'\.\.' segment"),
    ("a/../../b", r"'\.\.' segment"),
    ("a\\..\\..\\b.txt", r"'\.\.' segment"),
    ("..\\evil.txt", r"'\.\.' segment"),
    ("/abs.txt", "absolute path"),
    ("\\abs.txt", "absolute path"),
    ("C:/x.txt", "drive letter"),
    ("C:x.txt", "drive letter"),
    ("d/CON.txt", "reserved Windows device"),
])
def test_rejects_unsafe_name(box, tmp_path, monkeypatch, name, match):
    zp = make_zip(tmp_path / "bad.zip", [("fine.png", b"x"), (zipfile.ZipInfo(name), b"evil")])
    err = assert_rejected(box, zp, match, monkeypatch=monkeypatch)
    assert repr(name) in str(err)


def test_rejects_nul_byte_in_name(box, tmp_path, monkeypatch):
    # zipfile refuses to write a NUL, so patch it into the raw bytes (local + central name).
    raw = io.BytesIO()
    make_zip(raw, [("evil.png\x01.txt", b"x")])
    data = raw.getvalue().replace(b"evil.png\x01.txt", b"evil.png\x00.txt")
    zp = tmp_path / "nul.zip"
    zp.write_bytes(data)
    assert_rejected(box, zp, "NUL byte", monkeypatch=monkeypatch)


# ---------------------------------------------------------------- entry types


def test_rejects_symlink_entry(box, tmp_path, monkeypatch):
    link = zipfile.ZipInfo("link.png")
    link.create_system = 3
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    zp = make_zip(tmp_path / "link.zip", [("a.png", b"x"), (link, b"/etc/passwd")])
    assert_rejected(box, zp, "symbolic link", monkeypatch=monkeypatch)


@pytest.mark.parametrize("kind", [stat.S_IFIFO, stat.S_IFCHR, stat.S_IFBLK, stat.S_IFSOCK])
def test_rejects_special_file_entry(box, tmp_path, monkeypatch, kind):
    info = zipfile.ZipInfo("dev")
    info.external_attr = (kind | 0o644) << 16
    zp = make_zip(tmp_path / "dev.zip", [(info, b"")])
    assert_rejected(box, zp, "not a regular file", monkeypatch=monkeypatch)


def test_rejects_encrypted_entry(box, tmp_path, monkeypatch):
    raw = io.BytesIO()
    make_zip(raw, [("a.png", b"x"), ("secret.png", b"y")])
    # zipfile clears flag_bits when writing, so set bit 0 in the headers afterwards.
    data = patch_headers(raw.getvalue(), 6, 8, "<H", 0x1, index=1)
    zp = tmp_path / "enc.zip"
    zp.write_bytes(data)
    assert_rejected(box, zp, "encrypted", monkeypatch=monkeypatch)


# ---------------------------------------------------------------- sizes and counts


def test_rejects_too_many_files(box, tmp_path, monkeypatch):
    zp = make_zip(tmp_path / "many.zip", [(f"{i}.png", b"x") for i in range(4)])
    assert_rejected(box, zp, "4 files, over the 3-file limit", ZipLimits(max_files=3), monkeypatch)


def test_junk_does_not_count_towards_file_limit(box, tmp_path):
    _, dest = box
    zp = make_zip(tmp_path / "mac.zip", [("a.png", b"x"), ("__MACOSX/._a.png", b"j"), ("._b", b"j")])
    assert len(extract_zip_safely(zp, dest, ZipLimits(max_files=1))) == 1


def test_rejects_total_size_over_cap(box, tmp_path, monkeypatch):
    zp = make_zip(tmp_path / "big.zip", [("a.png", b"a" * 600), ("b.png", b"b" * 600)])
    assert_rejected(box, zp, "unpacks to 1200 bytes", ZipLimits(max_total_bytes=1000), monkeypatch)


def test_rejects_entry_size_over_cap(box, tmp_path, monkeypatch):
    zp = make_zip(tmp_path / "entry.zip", [("a.png", b"a" * 200)])
    assert_rejected(box, zp, "over the 100-byte limit per file", ZipLimits(max_entry_bytes=100), monkeypatch)


def test_rejects_zip_bomb_by_ratio(box, tmp_path, monkeypatch):
    # 50 MiB of zeros deflates ~1000x; streamed into the archive so memory stays low.
    zp = tmp_path / "bomb.zip"
    with zipfile.ZipFile(zp, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        with zf.open("bomb.png", "w") as f:
            chunk = bytes(1024 * 1024)
            for _ in range(50):
                f.write(chunk)
    assert_rejected(box, zp, "zip bomb", monkeypatch=monkeypatch)


def test_rejects_entry_whose_real_data_is_longer_than_declared(box, tmp_path):
    # A stored entry whose headers claim 10 bytes but carry 4000: the first, honest file
    # is written before the liar is reached and must be removed again.
    raw = io.BytesIO()
    make_zip(raw, [("good.png", b"ok"), ("liar.png", b"L" * 4000)], zipfile.ZIP_STORED)
    data = patch_headers(raw.getvalue(), 22, 24, "<I", 10, index=1)  # uncompressed size
    zp = tmp_path / "liar.zip"
    zp.write_bytes(data)
    assert_rejected(box, zp, "corrupt", before_write=False)


def test_streaming_counts_real_bytes_not_declared(box, tmp_path, monkeypatch):
    # zipfile itself already trims to the declared size; simulate a reader that does not,
    # to prove our own counter stops the write and cleans up.
    zp = make_zip(tmp_path / "ok.zip", [("good.png", b"ok"), ("sub/more.png", b"m" * 10)])
    real_open = zipfile.ZipFile.open

    def lying_open(self, info, *a, **k):
        name = info.filename if isinstance(info, zipfile.ZipInfo) else info
        return io.BytesIO(b"m" * (3 * zi.CHUNK)) if name == "sub/more.png" else real_open(self, info, *a, **k)

    monkeypatch.setattr(zipfile.ZipFile, "open", lying_open)
    assert_rejected(box, zp, "more than its declared 10 bytes", before_write=False)


# ---------------------------------------------------------------- overwrites


@pytest.mark.parametrize("names", [
    ("Img.png", "img.PNG"),
    ("a/b.txt", "A/B.TXT"),
    ("a", "A/b.txt"),          # file where another entry needs a folder
    ("a/b.txt", "a"),          # and the other order
    ("same.txt", "same.txt"),
    ("x.txt", "x.txt."),       # Windows strips trailing dots
])
def test_rejects_names_that_collide(box, tmp_path, monkeypatch, names):
    zp = tmp_path / "dup.zip"
    with pytest.warns(UserWarning) if names[0] == names[1] else contextlib.nullcontext():
        make_zip(zp, [(n, b"x") for n in names])
    assert_rejected(box, zp, "clashes with another entry", monkeypatch=monkeypatch)


# ---------------------------------------------------------------- not a zip / bad destination


def test_rejects_non_zip_file(box, tmp_path):
    zp = tmp_path / "notes.zip"
    zp.write_text("this is a text file, not an archive")
    assert_rejected(box, zp, "not a valid zip archive", before_write=False)


def test_rejects_truncated_zip(box, tmp_path):
    zp = make_zip(tmp_path / "cut.zip", [("a.png", os.urandom(5000))])
    zp.write_bytes(zp.read_bytes()[:3000])
    assert_rejected(box, zp, "not a valid zip archive", before_write=False)


def test_destination_must_exist_and_be_empty(box, tmp_path):
    _, dest = box
    zp = make_zip(tmp_path / "ok.zip", [("a.png", b"x")])
    with pytest.raises(ValueError, match="does not exist"):
        extract_zip_safely(zp, dest / "missing")
    (dest / "old.png").write_bytes(b"old")
    with pytest.raises(ValueError, match="not empty") as err:
        extract_zip_safely(zp, dest)
    assert not isinstance(err.value, UnsafeArchiveError)
    assert (dest / "old.png").read_bytes() == b"old"


def test_resolve_check_catches_what_name_checks_miss(box, tmp_path, monkeypatch):
    # Defence in depth: if name validation ever let '..' through, the resolve() check stops it.
    zp = make_zip(tmp_path / "ok.zip", [("a.png", b"x")])
    monkeypatch.setattr(zi, "_entry_parts", lambda zip_path, info: ["..", "escaped.png"])
    assert_rejected(box, zp, "outside the folder", before_write=False)


def test_overlong_entry_name_is_refused_cleanly(tmp_path):
    import zipfile as _zf

    from lib_lora_trainer.dataset.zip_import import UnsafeArchiveError, extract_zip_safely
    archive = tmp_path / "long.zip"
    with _zf.ZipFile(archive, "w") as zf:
        zf.writestr("a" * 300 + ".txt", "x")
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(UnsafeArchiveError, match="255 bytes"):
        extract_zip_safely(archive, dest)
    assert list(dest.iterdir()) == []

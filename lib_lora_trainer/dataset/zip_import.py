"""Safe extraction of an uploaded dataset .zip (images + .txt captions).

The archive comes from a browser upload, so every entry is treated as hostile:
names that escape the destination, links, device files, encryption, zip bombs
and overwrites are rejected for the whole archive, and on any failure the
destination is emptied again so the caller never sees a half-extracted dataset.
"""

from __future__ import annotations

import os
import shutil
import stat
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

CHUNK = 1024 * 1024
_RATIO_MIN_BYTES = 1024 * 1024  # tiny files compress absurdly well; only judge big ones
_JUNK_NAMES = {".ds_store", "thumbs.db", "desktop.ini"}
# Windows opens these as devices whatever the folder or extension.
_RESERVED = {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(10)), *(f"lpt{i}" for i in range(10))}
_FILE_MODE = 0o644


class UnsafeArchiveError(ValueError):
    """The archive cannot be extracted safely; the message says why and how to fix it."""


@dataclass(frozen=True)
class ZipLimits:
    max_files: int = 10_000
    max_total_bytes: int = 2 * 1024**3
    max_entry_bytes: int = 256 * 1024**2
    max_ratio: float = 200.0  # per entry, only for entries over 1 MiB uncompressed


def _fail(zip_path, entry, problem: str, fix: str) -> UnsafeArchiveError:
    where = f"entry {entry!r} " if entry is not None else ""
    return UnsafeArchiveError(f"{Path(zip_path).name}: {where}{problem}. Fix: {fix}.")


def _entry_parts(zip_path, info: zipfile.ZipInfo) -> list[str]:
    """Path segments of an entry, or UnsafeArchiveError if the name could leave dest_dir."""
    raw = info.orig_filename  # zipfile truncates .filename at a NUL byte; the original keeps it
    if "\x00" in raw:
        raise _fail(zip_path, raw, "has a NUL byte in its name", "rename the file")
    # Windows tools write '\' as separator and Windows honours it, so treat it as one.
    name = raw.replace("\\", "/")
    if name.startswith("/"):
        raise _fail(zip_path, raw, "is an absolute path", "zip the files with relative paths")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if not parts:
        raise _fail(zip_path, raw, "has an empty name", "re-create the zip")
    for part in parts:
        if len(part.encode("utf-8")) > 255:  # no filesystem takes a longer name
            raise _fail(zip_path, raw, "has a file or folder name over 255 bytes", "rename it shorter")
        if part == "..":
            raise _fail(zip_path, raw, "contains a '..' segment that points outside the folder",
                        "zip the files with relative paths inside the dataset folder")
        if ":" in part:  # 'C:' drive letters and NTFS alternate streams
            raise _fail(zip_path, raw, "contains ':' (a drive letter or stream name)",
                        "rename the file without ':' and zip with relative paths")
        if part.split(".")[0].rstrip(" ").lower() in _RESERVED:
            raise _fail(zip_path, raw, "uses a reserved Windows device name", "rename the file")
    return parts


def _is_junk(parts: list[str]) -> bool:
    # Finder and Explorer metadata is never training data.
    return parts[0] == "__MACOSX" or parts[-1].startswith("._") or parts[-1].lower() in _JUNK_NAMES


def _plan(zip_path, zf: zipfile.ZipFile, limits: ZipLimits) -> list[tuple[zipfile.ZipInfo, list[str]]]:
    """Check the central directory and return (entry, path parts) to extract; writes nothing."""
    plan, files, dirs, total = [], set(), set(), 0
    for info in zf.infolist():
        parts = _entry_parts(zip_path, info)  # validate every name, even skipped ones
        mode = info.external_attr >> 16
        if stat.S_ISLNK(mode):
            raise _fail(zip_path, info.orig_filename, "is a symbolic link",
                        "zip the real files instead of links (e.g. zip without -y)")
        if info.is_dir() or stat.S_ISDIR(mode):
            continue
        if stat.S_IFMT(mode) and not stat.S_ISREG(mode):  # 0 means no unix mode was recorded
            raise _fail(zip_path, info.orig_filename, "is not a regular file (device, fifo or socket)",
                        "zip only the image and caption files")
        if info.flag_bits & 0x1:
            raise _fail(zip_path, info.orig_filename, "is encrypted", "re-create the zip without a password")
        if _is_junk(parts):
            continue
        if info.file_size > limits.max_entry_bytes:
            raise _fail(zip_path, info.orig_filename,
                        f"is {info.file_size} bytes, over the {limits.max_entry_bytes}-byte limit per file",
                        "remove or shrink that file")
        if info.file_size > _RATIO_MIN_BYTES and info.file_size / max(info.compress_size, 1) > limits.max_ratio:
            raise _fail(zip_path, info.orig_filename,
                        f"expands {info.file_size / max(info.compress_size, 1):.0f}x, over the "
                        f"{limits.max_ratio:g}x limit (zip bomb?)", "upload real image and caption files")
        # Case-insensitive file systems (Windows, macOS) and Windows' trailing dot/space
        # stripping would make these land on one path and silently overwrite each other.
        key = tuple(p.rstrip(" .").casefold() for p in parts)
        if key in files or key in dirs or any(key[:i] in files for i in range(1, len(key))):
            raise _fail(zip_path, info.orig_filename, "clashes with another entry of the same name "
                        "(names are compared ignoring case)", "rename one of the files")
        files.add(key)
        dirs.update(key[:i] for i in range(1, len(key)))
        total += info.file_size
        plan.append((info, parts))
    if len(plan) > limits.max_files:
        raise _fail(zip_path, None, f"has {len(plan)} files, over the {limits.max_files}-file limit",
                    "split the dataset into smaller archives")
    if total > limits.max_total_bytes:
        raise _fail(zip_path, None, f"unpacks to {total} bytes, over the {limits.max_total_bytes}-byte limit",
                    "split the dataset into smaller archives")
    return plan


def _write_entry(zip_path, zf: zipfile.ZipFile, info: zipfile.ZipInfo, target: Path) -> int:
    """Stream one entry to target, counting real bytes; returns the byte count."""
    target.parent.mkdir(parents=True, exist_ok=True)
    # O_EXCL: never overwrite or follow anything already there; mode ignores archive permissions.
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0) | getattr(os, "O_NOFOLLOW", 0)
    written = 0
    with zf.open(info) as src, os.fdopen(os.open(target, flags, _FILE_MODE), "wb") as dst:
        while chunk := src.read(CHUNK):
            written += len(chunk)
            # Declared sizes were already capped, so this bound also enforces the entry
            # and total limits against a lying header or decompressor.
            if written > info.file_size:
                raise _fail(zip_path, info.orig_filename,
                            f"unpacks to more than its declared {info.file_size} bytes",
                            "re-create the zip; this one is corrupt or malicious")
            dst.write(chunk)
    os.chmod(target, _FILE_MODE)  # exact 0o644 whatever the umask
    return written


def _empty(dest: Path) -> None:
    for child in dest.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()


def extract_zip_safely(zip_path, dest_dir, limits: ZipLimits = ZipLimits()) -> list[Path]:
    """Extract the dataset zip into the existing, empty dest_dir; return the written files."""
    dest = Path(dest_dir)
    if not dest.is_dir():
        raise ValueError(f"destination folder {dest} does not exist; create it first")
    if any(dest.iterdir()):
        raise ValueError(f"destination folder {dest} is not empty; give an empty folder")
    root = dest.resolve()
    written: list[Path] = []
    try:
        with zipfile.ZipFile(zip_path) as zf:
            for info, parts in _plan(zip_path, zf, limits):
                target = dest.joinpath(*parts)
                if not target.resolve().is_relative_to(root):  # last line of defence
                    raise _fail(zip_path, info.orig_filename, "would be written outside the folder",
                                "zip the files with relative paths")
                _write_entry(zip_path, zf, info, target)
                written.append(target)
    except UnsafeArchiveError:
        _empty(dest)
        raise
    except UnicodeDecodeError as exc:  # an entry flagged UTF-8 whose name is not UTF-8
        _empty(dest)
        raise _fail(zip_path, None, f"has a file name flagged as UTF-8 that is not UTF-8 ({exc.reason})",
                    "re-create the zip with a tool that writes UTF-8 names (e.g. 7-Zip, Info-ZIP)") from exc
    except (zipfile.BadZipFile, EOFError, zlib.error, NotImplementedError) as exc:
        _empty(dest)
        raise _fail(zip_path, None, f"is not a valid zip archive or is corrupt ({exc})",
                    "re-create it as a standard .zip (Deflate, no password)") from exc
    except BaseException:
        _empty(dest)
        raise
    return written

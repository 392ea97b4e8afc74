"""Request bodies: JSON with a size cap, multipart forms with a size cap, and uploaded dataset zips.

The cap is enforced twice: on the declared Content-Length (refused before anything is read) and
on the bytes actually received (a chunked or lying client is cut off at the limit). An uploaded
zip is copied into a fresh folder under the upload dir and extracted there with
`extract_zip_safely` (zip slip, links, bombs refused); the folder is removed afterwards.
"""

from __future__ import annotations

import json
import math
import shutil
import tempfile
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any, AsyncIterator, Iterator

from starlette.datastructures import UploadFile
from starlette.requests import Request

from .errors import ApiError, from_message

GiB = 1024**3
DEFAULT_MAX_UPLOAD_BYTES = 2 * GiB
MAX_JSON_BYTES = 4 * 1024**2
MAX_FORM_TEXT_CHARS = 1024**2
_COPY_CHUNK = 1024**2


class _TooLarge(Exception):
    pass


def too_large(limit: int, what: str = "request body") -> ApiError:
    return ApiError(413, f"the {what} is over the {limit}-byte limit", field="file" if what == "upload" else None,
                    fix="send a smaller file (split the dataset into several zips) or ask the server owner "
                        "to raise the upload limit")


def _declared_length(request: Request) -> int | None:
    raw = request.headers.get("content-length")
    if raw is None:
        return None
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, f"Content-Length {raw[:40]!r} is not a number") from None
    if value < 0:
        raise ApiError(400, "Content-Length is negative")
    return value


def limited(request: Request, limit: int) -> Request:
    """A view of `request` whose body stops at `limit` bytes (_TooLarge past it)."""
    declared = _declared_length(request)
    if declared is not None and declared > limit:
        raise _TooLarge()
    seen = 0
    receive = request.receive

    async def counting_receive():
        nonlocal seen
        message = await receive()
        if message.get("type") == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                raise _TooLarge()
        return message

    return Request(request.scope, counting_receive)


def media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


async def read_json_object(request: Request, limit: int = MAX_JSON_BYTES) -> dict:
    try:
        body = await limited(request, limit).body()
    except _TooLarge:
        raise too_large(limit) from None
    return parse_json_object(body, "request body")


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise ValueError(f"number {text[:40]} is out of range")
    return value


def _no_constant(name: str):
    raise ValueError(f"{name} is not a JSON number")


def parse_json_object(raw: bytes | str, what: str, field: str | None = None) -> dict:
    """A JSON object (RFC 8259: no NaN/Infinity, no number beyond the float range)."""
    try:
        data = json.loads(raw, parse_float=_finite_float, parse_constant=_no_constant)
    except (ValueError, RecursionError) as exc:  # bad JSON, bad UTF-8, 5000-digit numbers, deep nesting
        raise ApiError(400, f"the {what} is not valid JSON ({type(exc).__name__}: {str(exc)[:200]})", field=field,
                       fix="send a JSON object such as {\"dataset\": \"/data/me\", \"preset\": \"sd15-portrait\"}") \
            from None
    if not isinstance(data, dict):
        raise ApiError(400, f"the {what} must be a JSON object, got {type(data).__name__}", field=field,
                       fix="send a JSON object {...}")
    return data


@asynccontextmanager
async def read_form(request: Request, limit: int) -> AsyncIterator[dict[str, Any]]:
    """The multipart form as {name: str | UploadFile} (the first value of each name); the
    spooled upload files are closed on exit."""
    try:
        form = await limited(request, limit).form()
    except _TooLarge:
        raise too_large(limit, "upload") from None
    except ApiError:
        raise
    except Exception as exc:  # starlette/python-multipart parse errors differ between versions
        raise ApiError(400, f"the multipart form cannot be read ({type(exc).__name__}: {str(exc)[:200]})",
                       fix="send multipart/form-data with a `file` part holding the .zip") from None
    try:
        out: dict[str, Any] = {}
        for key, value in form.multi_items():
            out.setdefault(key, value)
        yield out
    finally:
        await form.close()


def form_text(form: dict[str, Any], key: str, default: str | None = None) -> str | None:
    value = form.get(key)
    if value is None:
        return default
    if not isinstance(value, str):
        raise ApiError(400, f"form field {key!r} must be text, not a file", field=key)
    if len(value) > MAX_FORM_TEXT_CHARS:
        raise ApiError(400, f"form field {key!r} is over {MAX_FORM_TEXT_CHARS} characters", field=key)
    return value


def form_file(form: dict[str, Any], key: str = "file") -> UploadFile:
    value = form.get(key)
    if value is None or isinstance(value, str) or not hasattr(value, "file"):
        raise ApiError(400, f"the form has no {key!r} file part", field=key,
                       fix=f"attach the dataset .zip as the form field {key!r}")
    return value


def _copy_capped(src, dest: Path, limit: int) -> None:
    src.seek(0)
    written = 0
    with open(dest, "xb") as out:
        while chunk := src.read(_COPY_CHUNK):
            written += len(chunk)
            if written > limit:
                raise _TooLarge()
            out.write(chunk)


@contextmanager
def extracted_upload(upload: UploadFile, upload_dir: Path, limit: int, zip_limits=None) -> Iterator[Path]:
    """Blocking (run it in a thread): the upload extracted into a fresh folder, removed on exit."""
    from lib_lora_trainer.dataset.zip_import import UnsafeArchiveError, ZipLimits, extract_zip_safely

    upload_dir = Path(upload_dir)
    upload_dir.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="upload-", dir=upload_dir))
    try:
        archive = folder / "upload.zip"
        try:
            _copy_capped(upload.file, archive, limit)
        except _TooLarge:
            raise too_large(limit, "upload") from None
        dataset = folder / "dataset"
        dataset.mkdir()
        try:
            extract_zip_safely(archive, dataset, zip_limits or ZipLimits())
        except UnsafeArchiveError as exc:
            raise from_message(400, str(exc), field="file") from None
        except OSError as exc:  # e.g. an entry name longer than this file system allows
            raise ApiError(400, f"the archive cannot be extracted here: {exc.strerror or exc}", field="file",
                           fix="re-create the zip with short, plain file names") from None
        archive.unlink()
        yield dataset
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def upload_label(upload: UploadFile) -> str:
    """The client's file name, for display only (never used as a path)."""
    name = str(getattr(upload, "filename", "") or "upload.zip")
    name = name.replace("\\", "/").rsplit("/", 1)[-1].replace("\x00", "")
    return name[:200] or "upload.zip"

"""The hashes sd-scripts stores in LoRA metadata, computed the same way.

- sshs_model_hash / sshs_legacy_hash: what sd-webui-additional-networks indexes LoRA files by.
- ss_sd_model_hash / ss_new_sd_model_hash: A1111's old and new checkpoint hashes of the base model.
The helpers take bytes (a whole serialised safetensors file) or a path, never tensors.
"""

from __future__ import annotations

import hashlib
import os

# A1111's "old" hash reads 64 KiB starting at 1 MiB, not the whole file (it was meant to be fast).
LEGACY_OFFSET = 0x100000
LEGACY_LENGTH = 0x10000
_CHUNK = 1024 * 1024


def addnet_hash_safetensors(data: bytes) -> str:
    """sha256 of everything after the safetensors header, i.e. the tensor bytes only.

    The header (and so the metadata) is left out, so editing metadata does not change it.
    """
    view = memoryview(data)
    header_len = int.from_bytes(view[:8], "little")
    return hashlib.sha256(view[8 + header_len:]).hexdigest()


def addnet_hash_legacy(data: bytes) -> str:
    """First 8 hex digits of sha256 over bytes [1 MiB, 1 MiB + 64 KiB) of the file.

    Shorter files hash whatever is left in that window, which may be nothing
    (then it is sha256(b"")[:8] == "e3b0c442", as in sd-scripts).
    """
    return hashlib.sha256(memoryview(data)[LEGACY_OFFSET:LEGACY_OFFSET + LEGACY_LENGTH]).hexdigest()[:8]


def model_hash_legacy(path: str | os.PathLike) -> str:
    """A1111's old checkpoint hash (sd-scripts' ss_sd_model_hash): the same window, read from disk."""
    with open(path, "rb") as f:
        f.seek(LEGACY_OFFSET)
        return hashlib.sha256(f.read(LEGACY_LENGTH)).hexdigest()[:8]


def sha256_file(path: str | os.PathLike) -> str:
    """Full sha256 of a file, streamed in 1 MiB chunks (ss_new_sd_model_hash; base models are GBs)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()

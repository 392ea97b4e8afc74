"""Pure-Python CLIP BPE tokenizer (the one Stable Diffusion's text encoders use).

Why it exists: the UI counts caption tokens (the 75-token chunks) without
loading transformers, and training runs offline, so we write the tokenizer
folders kohya sd-scripts wants ourselves instead of downloading them.
Only the stdlib and `regex` are required; `ftfy` is used when importable.
"""

from __future__ import annotations

import gzip
import html
import importlib.util
import json
import os
import threading
import unicodedata
from collections import OrderedDict
from pathlib import Path

import regex

from lib_lora_trainer import atomic

ENV_VAR = "LORA_TRAINER_CLIP_BPE"
BPE_FILENAME = "bpe_simple_vocab_16e6.txt.gz"
# CLIP keeps only this many merges so that vocab = 256 + 256 + merges + 2 = 49408.
NUM_MERGES = 49152 - 256 - 2
BOS_TOKEN = "<|startoftext|>"
EOS_TOKEN = "<|endoftext|>"
END_OF_WORD = "</w>"

# Same split as the reference tokenizer; the text is lowercased before this.
_PRE_TOKENIZE = regex.compile(
    r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+""",
    regex.IGNORECASE,
)
_WHITESPACE = regex.compile(r"\s+")

try:  # ftfy repairs mojibake; the reference tokenizers use it when installed.
    import ftfy as _ftfy
except ImportError:  # pragma: no cover - depends on the environment
    _ftfy = None


class ClipVocabNotFound(FileNotFoundError):
    """The CLIP merges file could not be located."""


def _package_dir(name: str) -> Path | None:
    # find_spec only locates the package; importing open_clip would pull in
    # torch/torchvision, which is slow and can fail in a bare environment.
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for loc in spec.submodule_search_locations:
        candidate = Path(loc) / BPE_FILENAME
        if candidate.is_file():
            return candidate
    return None


def find_bpe_vocab_path() -> Path:
    """Locate bpe_simple_vocab_16e6.txt.gz: env var, then open_clip, then clip."""
    override = os.environ.get(ENV_VAR)
    if override:
        path = Path(override).expanduser()
        if path.is_dir():
            path = path / BPE_FILENAME
        if path.is_file():
            return path
        # An explicit setting that is wrong should fail loudly, not fall back.
        raise ClipVocabNotFound(
            f"{ENV_VAR} is set to {override!r}, but no {BPE_FILENAME} exists there. "
            f"Point {ENV_VAR} at that file, or unset it and run "
            f"`pip install --no-deps open_clip_torch`."
        )
    for package in ("open_clip", "clip"):
        found = _package_dir(package)
        if found is not None:
            return found
    raise ClipVocabNotFound(
        f"Could not find the CLIP BPE vocabulary {BPE_FILENAME}: searched ${ENV_VAR} "
        f"(not set), the installed 'open_clip' package and the installed 'clip' package. "
        f"Fix: `pip install --no-deps open_clip_torch`, or set {ENV_VAR} to the path of {BPE_FILENAME}."
    )


def bytes_to_unicode() -> dict[int, str]:
    """Byte -> printable char table used for byte-level BPE.

    Printable Latin-1 bytes stand for themselves; the rest (controls, space,
    ...) are shifted to chr(256 + n). Insertion order is also vocab order.
    """
    kept = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    table = {b: chr(b) for b in kept}
    shifted = 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + shifted)
            shifted += 1
    return table


def clean_text(text: str) -> str:
    """ftfy fix + HTML unescape (twice, for double-escaped scrapes), collapse whitespace, lowercase."""
    if _ftfy is not None:
        text = _ftfy.fix_text(text)
    else:
        text = unicodedata.normalize("NFC", text)  # the part of ftfy that matters most
    text = html.unescape(html.unescape(text)).strip()
    return _WHITESPACE.sub(" ", text).strip().lower()


class ClipBpeTokenizer:
    """CLIP byte-level BPE tokenizer. encode() returns ids without bos/eos."""

    bos_id = 49406
    eos_id = 49407

    def __init__(self, bpe_path: str | os.PathLike | None = None, cache_size: int = 20000):
        path = Path(bpe_path) if bpe_path is not None else find_bpe_vocab_path()
        with gzip.open(path, "rt", encoding="utf-8") as fh:
            lines = fh.read().split("\n")
        # Line 0 is a header ("#version" style), then one "a b" merge per line.
        self.merges: list[tuple[str, str]] = [tuple(line.split()) for line in lines[1 : NUM_MERGES + 1]]
        if len(self.merges) != NUM_MERGES or any(len(m) != 2 for m in self.merges):
            raise ValueError(f"{path} does not look like a CLIP BPE merges file")

        self.byte_encoder = bytes_to_unicode()
        self.byte_decoder = {c: b for b, c in self.byte_encoder.items()}
        tokens = list(self.byte_encoder.values())
        tokens += [t + END_OF_WORD for t in tokens]
        tokens += ["".join(m) for m in self.merges]
        tokens += [BOS_TOKEN, EOS_TOKEN]
        self.vocab: dict[str, int] = {t: i for i, t in enumerate(tokens)}
        self.decoder: dict[int, str] = dict(enumerate(tokens))
        self.bpe_ranks: dict[tuple[str, str], int] = {m: i for i, m in enumerate(self.merges)}
        self.bpe_path = path

        # word -> ids; captions repeat words a lot, so this makes counting cheap.
        self._cache: OrderedDict[str, tuple[int, ...]] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self.vocab)

    def _bpe(self, word: str) -> tuple[int, ...]:
        """Merge the byte-level chars of one word, lowest-ranked pair first."""
        with self._lock:
            hit = self._cache.get(word)
            if hit is not None:
                self._cache.move_to_end(word)
                return hit

        parts = list(word[:-1]) + [word[-1] + END_OF_WORD]
        ranks = self.bpe_ranks
        while len(parts) > 1:
            pairs = [(parts[i], parts[i + 1]) for i in range(len(parts) - 1)]
            best = min(pairs, key=lambda p: ranks.get(p, NUM_MERGES))
            if best not in ranks:
                break
            first, second = best
            merged: list[str] = []
            i = 0
            while i < len(parts):  # merge every occurrence, left to right
                if i + 1 < len(parts) and parts[i] == first and parts[i + 1] == second:
                    merged.append(first + second)
                    i += 2
                else:
                    merged.append(parts[i])
                    i += 1
            parts = merged
        ids = tuple(self.vocab[p] for p in parts)

        with self._lock:
            self._cache[word] = ids
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return ids

    def encode(self, text: str) -> list[int]:
        ids: list[int] = []
        for piece in _PRE_TOKENIZE.findall(clean_text(text)):
            if piece == BOS_TOKEN or piece == EOS_TOKEN:
                ids.append(self.vocab[piece])
                continue
            word = "".join(self.byte_encoder[b] for b in piece.encode("utf-8"))
            ids.extend(self._bpe(word))
        return ids

    def count_tokens(self, text: str) -> int:
        return len(self.encode(text))

    def decode(self, ids, skip_special_tokens: bool = True) -> str:
        specials = (self.bos_id, self.eos_id) if skip_special_tokens else ()
        text = "".join(self.decoder[int(i)] for i in ids if int(i) not in specials)
        # "</w>" and the specials are printable ASCII, so they survive byte decoding.
        raw = bytearray(self.byte_decoder[c] for c in text)
        return raw.decode("utf-8", errors="replace").replace(END_OF_WORD, " ").strip()


_instance: ClipBpeTokenizer | None = None
_instance_lock = threading.Lock()


def get_tokenizer() -> ClipBpeTokenizer:
    """Shared tokenizer, loaded on first use."""
    global _instance
    if _instance is None:
        with _instance_lock:
            if _instance is None:
                _instance = ClipBpeTokenizer()
    return _instance


# --- transformers-compatible folders (save_pretrained layout) -------------

# Hub repo -> the folder name kohya sd-scripts looks for under --tokenizer_cache_dir.
HUB_IDS = {
    "sd1": "openai/clip-vit-large-patch14",
    "sdxl_bigg": "laion/CLIP-ViT-bigG-14-laion2B-39B-b160k",
}
# The bigG hub tokenizer pads with "!" (id 0), like open_clip; SD1 pads with eos.
_PAD_TOKENS = {"sd1": EOS_TOKEN, "sdxl_bigg": "!"}


def _special(content: str) -> dict:
    return {"content": content, "lstrip": False, "normalized": True, "rstrip": False, "single_word": False}


def write_pretrained_tokenizer(out_dir, variant: str = "sd1", tokenizer: ClipBpeTokenizer | None = None) -> Path:
    """Write vocab.json, merges.txt and configs loadable by CLIPTokenizer.from_pretrained(out_dir)."""
    if variant not in HUB_IDS:
        raise ValueError(f"unknown variant {variant!r}; expected one of {sorted(HUB_IDS)}")
    tok = tokenizer or get_tokenizer()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    pad = _PAD_TOKENS[variant]

    special_map = {
        "bos_token": _special(BOS_TOKEN),
        "eos_token": _special(EOS_TOKEN),
        "pad_token": pad if pad == "!" else _special(pad),
        "unk_token": _special(EOS_TOKEN),
    }
    config = {
        "add_prefix_space": False,
        "added_tokens_decoder": {
            str(tok.bos_id): {**_special(BOS_TOKEN), "special": True},
            str(tok.eos_id): {**_special(EOS_TOKEN), "special": True},
        },
        "bos_token": BOS_TOKEN,
        "clean_up_tokenization_spaces": True,
        "do_lower_case": True,
        "eos_token": EOS_TOKEN,
        "errors": "replace",
        "model_max_length": 77,
        "name_or_path": HUB_IDS[variant],
        "pad_token": pad,
        "tokenizer_class": "CLIPTokenizer",
        "unk_token": EOS_TOKEN,
    }
    # transformers' loader skips line 0 of merges.txt, so the header is required.
    merges = "#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in tok.merges)

    atomic.write_text(out / "vocab.json", json.dumps(tok.vocab, ensure_ascii=False))
    atomic.write_text(out / "merges.txt", merges)
    atomic.write_text(out / "special_tokens_map.json", json.dumps(special_map, indent=2) + "\n")
    atomic.write_text(out / "tokenizer_config.json", json.dumps(config, indent=2) + "\n")
    return out


def write_tokenizer_cache_dir(cache_dir, include_sdxl: bool = True) -> dict[str, Path]:
    """Fill a kohya --tokenizer_cache_dir so sd-scripts never reaches the hub."""
    variants = ["sd1", "sdxl_bigg"] if include_sdxl else ["sd1"]
    written = {}
    for variant in variants:
        hub_id = HUB_IDS[variant]
        # sd-scripts: os.path.join(cache_dir, name.replace("/", "_"))
        written[hub_id] = write_pretrained_tokenizer(Path(cache_dir) / hub_id.replace("/", "_"), variant)
    return written

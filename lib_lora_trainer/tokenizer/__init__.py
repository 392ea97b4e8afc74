"""CLIP tokenizer helpers: token counting and offline tokenizer folders."""

from .clip_bpe import (
    HUB_IDS,
    ClipBpeTokenizer,
    ClipVocabNotFound,
    clean_text,
    find_bpe_vocab_path,
    get_tokenizer,
    write_pretrained_tokenizer,
    write_tokenizer_cache_dir,
)

__all__ = [
    "HUB_IDS",
    "ClipBpeTokenizer",
    "ClipVocabNotFound",
    "clean_text",
    "find_bpe_vocab_path",
    "get_tokenizer",
    "write_pretrained_tokenizer",
    "write_tokenizer_cache_dir",
]

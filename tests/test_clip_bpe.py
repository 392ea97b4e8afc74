"""CLIP BPE tokenizer: ids must match transformers' CLIPTokenizer on the files we write."""

import json
import sys
import time

import pytest

from lib_lora_trainer.tokenizer import clip_bpe
from lib_lora_trainer.tokenizer import (
    ClipBpeTokenizer,
    ClipVocabNotFound,
    clean_text,
    find_bpe_vocab_path,
    get_tokenizer,
    write_pretrained_tokenizer,
    write_tokenizer_cache_dir,
)

LONG_CAPTION = " ".join(
    f"word{i % 7} {'tall' if i % 3 else 'blue-eyed'}, detailed" for i in range(34)
)  # 102 words

# Strings that ftfy leaves alone, so transformers (NFC, no ftfy) must agree exactly.
SAME_AS_HF = [
    "",
    "   ",
    "a photo of VadymPanchenko, man",
    "Hello, World!",
    "café au lait, naïve résumé",
    "cafe\u0301 decomposed accent",
    "Ünïcödé ÀÉÎÕÜ ñ ç ø å",
    "Ελληνικά γράμματα",
    "Привет, мир",
    "日本語のテキスト",
    "中文标签, 1girl",
    "한국어 캡션",
    "emoji 🙂🔥👍🏽 test",
    "family 👨‍👩‍👧 zwj",
    "1girl, 2boys, 1234567890",
    "3.14159 and 1e-10 and ½ ² Ⅻ",
    "(masterpiece:1.2), [bad hands], {best quality}",
    "score_9, score_8_up, rating_safe",
    "don't, it's, we're, I've, I'm, you'll, he'd",
    "'S 'T 'RE 'LL uppercase apostrophes",
    "rock'n'roll o'clock ''quoted''",
    "!!!???...;;; --- ***",
    "a  b\t\tc\n\nd \r\n e",
    "<|startoftext|> tagged <|endoftext|>",
    "ALL CAPS SHOUTING, mixedCASE camelCase snake_case kebab-case",
    "https://example.com/path?q=1&x=2",
    "e-mail: someone@example.com #hashtag @mention $100 50%",
    "ß ẞ straße",
    "a\u00a0non-breaking space",
    LONG_CAPTION,
]

# Strings our cleanup treats like CLIP/SD do (ftfy, html.unescape, Python's
# str.lower with its final-sigma rule) but transformers 5's fast tokenizer does not.
CLEANED_FIRST = [
    "ΣΊΣΥΦΟΣ final sigma",
    "fish &amp; chips &lt;3",
    "&amp;amp; double escaped",
    "it’s “curly” ‘quotes’",
    "ＦＵＬＬＷＩＤＴＨ ｔｅｘｔ",
    "ﬁne ligature",
]


@pytest.fixture(scope="module")
def tok():
    return get_tokenizer()


@pytest.fixture(scope="module")
def sd1_dir(tmp_path_factory, tok):
    return write_pretrained_tokenizer(tmp_path_factory.mktemp("tok") / "sd1", "sd1", tokenizer=tok)


@pytest.fixture(scope="module")
def hf_tok(sd1_dir):
    transformers = pytest.importorskip("transformers")
    return transformers.CLIPTokenizer.from_pretrained(str(sd1_dir), local_files_only=True)


def test_known_ids(tok, hf_tok):
    expected = [320, 1125, 539, 11880, 88, 1037, 514, 29073, 267, 786]
    assert tok.encode("a photo of VadymPanchenko, man") == expected
    assert hf_tok("a photo of VadymPanchenko, man").input_ids == [49406, *expected, 49407]


def test_vocab_shape(tok):
    assert len(tok.vocab) == 49408 == len(tok)
    assert len(tok.merges) == 49152 - 256 - 2
    assert tok.vocab["!"] == 0 and tok.vocab["a</w>"] == 320
    assert tok.vocab["<|startoftext|>"] == tok.bos_id == 49406
    assert tok.vocab["<|endoftext|>"] == tok.eos_id == 49407


@pytest.mark.parametrize("text", SAME_AS_HF, ids=range(len(SAME_AS_HF)))
def test_matches_transformers(tok, hf_tok, text):
    assert tok.encode(text) == hf_tok(text).input_ids[1:-1]


@pytest.mark.parametrize("text", CLEANED_FIRST, ids=range(len(CLEANED_FIRST)))
def test_matches_transformers_after_cleanup(tok, hf_tok, text):
    assert tok.encode(text) == hf_tok(clean_text(text)).input_ids[1:-1]


def test_cleanup_equivalences(tok):
    assert tok.encode("fish &amp; chips") == tok.encode("fish & chips")
    assert tok.encode("&amp;amp;") == tok.encode("&")  # unescaped twice
    assert tok.encode("  A\n\tB  ") == tok.encode("a b")
    assert tok.encode("ΟΔΟΣ") == tok.encode("οδος")  # Python's str.lower: final sigma
    if clip_bpe._ftfy is not None:
        assert tok.encode("it’s") == tok.encode("it's")


def test_count_tokens(tok):
    assert len(LONG_CAPTION.split()) >= 100
    assert tok.count_tokens(LONG_CAPTION) > 75
    assert tok.count_tokens(LONG_CAPTION) == len(tok.encode(LONG_CAPTION))
    assert tok.count_tokens("") == 0


def test_decode_round_trip(tok, hf_tok):
    text = "héllo wörld 🙂, 1girl"
    ids = tok.encode(text)
    assert tok.decode(ids) == "héllo wörld 🙂, 1 girl"
    assert tok.decode([tok.bos_id, *ids, tok.eos_id]) == tok.decode(ids)
    assert tok.decode(ids) == hf_tok.decode(ids)


def test_get_tokenizer_is_cached_and_fast(tok):
    assert get_tokenizer() is tok
    start = time.perf_counter()
    ClipBpeTokenizer(tok.bpe_path)
    assert time.perf_counter() - start < 2.0


def test_written_folder_layout_and_offline_load(sd1_dir):
    transformers = pytest.importorskip("transformers")
    names = {p.name for p in sd1_dir.iterdir()}
    assert {"vocab.json", "merges.txt", "tokenizer_config.json", "special_tokens_map.json"} <= names
    assert not any(n.endswith(".tmp") for n in names)  # atomic writes leave no temp files
    assert (sd1_dir / "merges.txt").read_text(encoding="utf-8").startswith("#version: 0.2\n")
    config = json.loads((sd1_dir / "tokenizer_config.json").read_text(encoding="utf-8"))
    assert config["model_max_length"] == 77 and config["pad_token"] == "<|endoftext|>"
    fast = transformers.CLIPTokenizerFast.from_pretrained(str(sd1_dir), local_files_only=True)
    assert fast("a photo of VadymPanchenko, man").input_ids[1:3] == [320, 1125]
    assert fast.pad_token == "<|endoftext|>" and fast.model_max_length == 77


def test_sdxl_bigg_pad_token(tmp_path, tok):
    transformers = pytest.importorskip("transformers")
    out = write_pretrained_tokenizer(tmp_path / "bigg", "sdxl_bigg", tokenizer=tok)
    hf = transformers.CLIPTokenizer.from_pretrained(str(out), local_files_only=True)
    assert hf.pad_token == "!" and hf.pad_token_id == 0
    assert hf("a photo of a cat").input_ids[1:-1] == tok.encode("a photo of a cat")


def test_unknown_variant(tmp_path):
    with pytest.raises(ValueError, match="sdxl_bigg"):
        write_pretrained_tokenizer(tmp_path, "sd3")


def test_cache_dir_names(tmp_path):
    written = write_tokenizer_cache_dir(tmp_path)
    for name in ("openai_clip-vit-large-patch14", "laion_CLIP-ViT-bigG-14-laion2B-39B-b160k"):
        assert (tmp_path / name / "vocab.json").is_file()
        assert (tmp_path / name / "merges.txt").is_file()
    assert set(written) == {"openai/clip-vit-large-patch14", "laion/CLIP-ViT-bigG-14-laion2B-39B-b160k"}
    only_sd1 = tmp_path / "sd1only"
    write_tokenizer_cache_dir(only_sd1, include_sdxl=False)
    assert [p.name for p in only_sd1.iterdir()] == ["openai_clip-vit-large-patch14"]


def test_env_var_missing_file(monkeypatch, tmp_path):
    missing = tmp_path / "nope" / "bpe_simple_vocab_16e6.txt.gz"
    monkeypatch.setenv("LORA_TRAINER_CLIP_BPE", str(missing))
    with pytest.raises(ClipVocabNotFound) as err:
        find_bpe_vocab_path()
    msg = str(err.value)
    assert "LORA_TRAINER_CLIP_BPE" in msg and "pip install --no-deps open_clip_torch" in msg
    assert isinstance(err.value, FileNotFoundError)
    with pytest.raises(ClipVocabNotFound):
        ClipBpeTokenizer()


def test_env_var_accepts_file_or_folder(monkeypatch, tok):
    monkeypatch.setenv("LORA_TRAINER_CLIP_BPE", str(tok.bpe_path))
    assert find_bpe_vocab_path() == tok.bpe_path
    monkeypatch.setenv("LORA_TRAINER_CLIP_BPE", str(tok.bpe_path.parent))
    assert find_bpe_vocab_path() == tok.bpe_path


def test_nothing_installed(monkeypatch):
    monkeypatch.delenv("LORA_TRAINER_CLIP_BPE", raising=False)
    monkeypatch.setattr(clip_bpe.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ClipVocabNotFound) as err:
        find_bpe_vocab_path()
    msg = str(err.value)
    for needle in ("open_clip", "'clip'", "LORA_TRAINER_CLIP_BPE", "pip install --no-deps open_clip_torch"):
        assert needle in msg


def test_finds_package_without_importing_it(monkeypatch):
    monkeypatch.delenv("LORA_TRAINER_CLIP_BPE", raising=False)
    if clip_bpe._package_dir("open_clip") is None and clip_bpe._package_dir("clip") is None:
        pytest.skip("neither open_clip nor clip is installed")
    had = {m for m in ("open_clip", "clip", "torchvision") if m in sys.modules}
    path = find_bpe_vocab_path()
    assert path.name == "bpe_simple_vocab_16e6.txt.gz" and path.is_file()
    assert {m for m in ("open_clip", "clip", "torchvision") if m in sys.modules} == had

"""Builtin engine vs sd-scripts (issue 13): max_token_length 150 / 225 encodes captions in 75-token
chunks (BOS + 75 + closing token each, 77 for the encoder) joined without the inner BOS/EOS."""

from __future__ import annotations

import pytest
import torch

from lib_lora_trainer.engines.builtin.args import ArgsError, parse_args
from lib_lora_trainer.engines.builtin.conditioning import encode_sd, encode_sdxl, tokenize

SHORT = "zkperson, a photo of a woman with pink hair"
LONG = ", ".join(f"tag{i} blue" for i in range(25))  # 116 tokens with BOS/EOS: two chunks, no truncation


@pytest.fixture(scope="module")
def sd1(tiny_model):
    from lib_lora_trainer.models.loading import load_components

    c = load_components(tiny_model)
    return c.text_encoders[0].eval(), c.tokenizers[0]


@pytest.fixture(scope="module")
def sdxl(tmp_path_factory):
    from lib_lora_trainer.models.loading import load_components
    from tiny_models import make_tiny_sdxl

    model, _ = make_tiny_sdxl(tmp_path_factory.mktemp("xl") / "xl.safetensors")
    c = load_components(model)
    return [te.eval() for te in c.text_encoders], c.tokenizers


def _sd2_tokenizer(tmp_path):
    from transformers import CLIPTokenizer

    from lib_lora_trainer.models.detect import sibling_config_dir
    from tiny_models import make_tiny_sd2

    model, _ = make_tiny_sd2(tmp_path / "sd2.safetensors")
    return CLIPTokenizer.from_pretrained(str(sibling_config_dir(model)), subfolder="tokenizer")


def test_the_run_toml_accepts_sd_scripts_lengths_only():
    required = {"pretrained_model_name_or_path": "m", "output_dir": "o", "network_module": "networks.lora"}
    for n in (75, 150, 225):
        assert parse_args({**required, "max_token_length": n}).max_token_length == n
    with pytest.raises(ArgsError, match="max_token_length"):
        parse_args({**required, "max_token_length": 100})


@torch.no_grad()
@pytest.mark.parametrize("clip_skip", [None, 2])
def test_long_encodings_have_1_plus_75n_plus_1_positions_and_start_as_the_plain_one(sd1, clip_skip):
    te, tok = sd1
    plain = encode_sd(te, tok, [SHORT], clip_skip).hidden
    assert plain.shape[1] == 77
    for length, positions in ((150, 152), (225, 227)):
        long = encode_sd(te, tok, [SHORT], clip_skip, length).hidden
        assert long.shape == (1, positions, plain.shape[-1])
        torch.testing.assert_close(long[:, :76], plain[:, :76])  # BOS and the first 75 tokens


@torch.no_grad()
def test_chunks_of_a_long_caption_and_batches(sd1):
    te, tok = sd1
    full = tok([LONG], padding="max_length", truncation=True, max_length=152, return_tensors="pt").input_ids[0]
    assert (full != tok.eos_token_id).sum() > 78, "the caption must need the second chunk"
    chunks = tokenize(tok, [LONG], "cpu", 150)[0]
    assert chunks.shape == (2, 77)
    bos, eos = tok.bos_token_id, tok.eos_token_id
    assert chunks[0].tolist() == [bos] + full[1:76].tolist() + [eos]
    assert chunks[1].tolist() == [bos] + full[76:151].tolist() + [full[-1].item()]
    # captions in one batch encode as they do alone (the chunks go back to their own caption)
    both = encode_sd(te, tok, [SHORT, LONG], None, 150).hidden
    torch.testing.assert_close(both[1:], encode_sd(te, tok, [LONG], None, 150).hidden)
    torch.testing.assert_close(both[:1], encode_sd(te, tok, [SHORT], None, 150).hidden)


def test_tokenizers_that_pad_with_another_token_close_every_chunk(tmp_path):
    """SD2 (and SDXL's second tokenizer) pad with "!": a chunk cut in the caption ends with EOS, an
    empty chunk is BOS, EOS, padding, and a short caption's first chunk is its plain tokenization."""
    tok = _sd2_tokenizer(tmp_path)
    bos, eos, pad = tok.bos_token_id, tok.eos_token_id, tok.pad_token_id
    assert pad != eos
    short = tokenize(tok, [SHORT], "cpu", 150)[0]
    plain = tokenize(tok, [SHORT], "cpu")[0]
    assert short[0].tolist() == plain.tolist()
    assert short[1].tolist() == [bos, eos] + [pad] * 75
    long = tokenize(tok, [LONG], "cpu", 150)[0]
    full = tok([LONG], padding="max_length", truncation=True, max_length=152).input_ids[0]
    assert long[0].tolist() == [bos] + full[1:76] + [eos]
    assert long[1].tolist() == [bos] + full[76:151] + [pad]


@torch.no_grad()
def test_sdxl_joins_both_encoders_and_pools_the_first_chunk(sdxl):
    tes, toks = sdxl
    plain = encode_sdxl(tes, toks, [SHORT])
    long = encode_sdxl(tes, toks, [SHORT, LONG], 150)
    assert long.hidden.shape == (2, 152, plain.hidden.shape[-1])
    torch.testing.assert_close(long.hidden[:1, :76], plain.hidden[:, :76])
    assert long.pooled.shape == (2, plain.pooled.shape[-1])
    torch.testing.assert_close(long.pooled[:1], plain.pooled)
    alone = encode_sdxl(tes, toks, [LONG], 150)
    torch.testing.assert_close(long.pooled[1:], alone.pooled)
    torch.testing.assert_close(long.hidden[1:], alone.hidden)

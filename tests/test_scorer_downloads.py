"""CLIP-I / CLIP-T / DINO weights downloaded on first use (evaluate/scorer_weights.py) when the user
agreed, from a local HTTP server laid out like the Hugging Face hub (`<repo>/resolve/main/<file>`,
HF_ENDPOINT) serving tiny random CLIP and DINOv2 models of the real architectures, built here."""

import functools
import http.server
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from PIL import Image

from lib_lora_trainer.evaluate.embedding import EmbeddingScorer
from lib_lora_trainer.evaluate.scorer_weights import MODELS
from lib_lora_trainer.evaluate.scoring import EvalContext

ROOT = Path(__file__).resolve().parent.parent


def _tiny_clip(folder: Path) -> None:
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel

    from lib_lora_trainer.tokenizer.clip_bpe import write_pretrained_tokenizer

    config = CLIPConfig(text_config={"vocab_size": 49408, "hidden_size": 32, "intermediate_size": 37,
                                     "num_hidden_layers": 1, "num_attention_heads": 2, "max_position_embeddings": 77},
                        vision_config={"hidden_size": 32, "intermediate_size": 37, "num_hidden_layers": 1,
                                       "num_attention_heads": 2, "image_size": 32, "patch_size": 8},
                        projection_dim=16)
    CLIPModel(config).save_pretrained(folder, safe_serialization=True)
    CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(folder)
    write_pretrained_tokenizer(folder, "sd1")


def _tiny_dino(folder: Path) -> None:
    from transformers import BitImageProcessor, Dinov2Config, Dinov2Model

    Dinov2Model(Dinov2Config(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, mlp_ratio=2, image_size=32,
                             patch_size=8)).save_pretrained(folder, safe_serialization=True)
    BitImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(folder)


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    """A hub with the two repositories (only the files the downloader asks for), at HF_ENDPOINT."""
    root = tmp_path_factory.mktemp("hub")
    for kind, build in (("clip", _tiny_clip), ("dino", _tiny_dino)):
        built = tmp_path_factory.mktemp(kind)
        build(built)
        served = root / MODELS[kind].repo / "resolve" / "main"
        served.mkdir(parents=True)
        for name in MODELS[kind].files:
            shutil.copyfile(built / name, served / name)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(root)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield {"root": root, "url": f"http://127.0.0.1:{server.server_address[1]}"}
    server.shutdown()


def _ctx():
    pictures = [Image.new("RGB", (40, 40), (200, 30 * i, 90)) for i in range(3)]
    return EvalContext("zyrette", dataset_images=pictures)


def test_nothing_is_downloaded_without_consent_and_the_reason_says_what_and_how_big(tmp_path, hub, monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", hub["url"])
    scorer = EmbeddingScorer(tmp_path / "clip", tmp_path / "dino", say=lambda line: pytest.fail(line))
    reason = scorer.unavailable_reason(_ctx())
    assert reason.startswith("CLIP-I/CLIP-T/DINO skipped: no CLIP weights in")
    assert "openai/clip-vit-base-patch32 (about 605 MB)" in reason and "facebook/dinov2-small (about 89 MB)" in reason
    assert not (tmp_path / "clip").exists() and not (tmp_path / "dino").exists()


def test_with_consent_the_weights_arrive_once_and_score(tmp_path, hub, monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", hub["url"])
    lines = []
    scorer = EmbeddingScorer(tmp_path / "clip", tmp_path / "dino", allow_download=True, say=lines.append)
    ctx = _ctx()
    assert scorer.unavailable_reason(ctx) is None
    assert lines[0] == f"scorers: downloading openai/clip-vit-base-patch32 (about 605 MB) into {tmp_path / 'clip'}"
    assert any(line.startswith("scorers: facebook/dinov2-small ready") for line in lines)
    assert sorted(p.name for p in (tmp_path / "dino").iterdir()) == sorted(MODELS["dino"].files)
    scores = scorer.score([Image.new("RGB", (40, 40), (190, 40, 80))] * 2, "zyrette, red jacket", [], ctx)
    assert set(scores) == {"clip_i", "clip_t", "dino"} and all(-1.0 <= v <= 1.0 for v in scores.values())
    # The next test finds them: no download, no consent needed.
    again = EmbeddingScorer(tmp_path / "clip", tmp_path / "dino", say=lambda line: pytest.fail(line))
    assert again.unavailable_reason(_ctx()) is None


def test_a_failed_download_leaves_nothing_half_made(tmp_path, hub, monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", hub["url"] + "/missing")
    scorer = EmbeddingScorer(tmp_path / "clip", tmp_path / "dino", allow_download=True, say=lambda _: None)
    reason = scorer.unavailable_reason(_ctx())
    assert "CLIP weights: downloading " + hub["url"] + "/missing/openai/clip-vit-base-patch32/resolve/main/config.json failed" in reason
    assert not any(tmp_path.iterdir())     # no folder, no .partial


def test_cli_status_and_download(tmp_path, hub):
    env = {"HF_ENDPOINT": hub["url"], "LORA_TRAINER_DINO_DIR": str(tmp_path / "dino"),
           "LORA_TRAINER_CLIP_DIR": str(tmp_path / "clip"), "PATH": "/usr/bin:/bin"}

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "lib_lora_trainer", "scorers", *args], cwd=ROOT, env=env,
                              capture_output=True, text=True)
    status = cli("status")
    assert status.returncode == 0 and "dino: missing" in status.stdout and "(about 89 MB)" in status.stdout
    assert cli("download", "dino").returncode == 0
    status = cli("status").stdout
    assert f"dino: ready in {tmp_path / 'dino'}" in status and "clip: missing" in status


def test_clip_features_are_the_projected_ones(tmp_path, hub, monkeypatch):
    """transformers 5 returns an output object from get_image_features: its projected features
    (projection_dim 16 here, not the hidden size 32) are what CLIP-I compares."""
    import torch

    from lib_lora_trainer.evaluate.embedding import _features

    monkeypatch.setenv("HF_ENDPOINT", hub["url"])
    scorer = EmbeddingScorer(tmp_path / "clip", tmp_path / "dino", allow_download=True, say=lambda _: None)
    assert scorer.unavailable_reason(_ctx()) is None
    feats = scorer._clip_images([Image.new("RGB", (40, 40), (10, 20, 30))])
    assert feats.shape == (1, 16)
    assert _features(torch.ones(2, 3)).shape == (2, 3)

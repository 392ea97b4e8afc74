"""Builtin engine dataset: TOML/folder blueprint (sd-scripts' fallbacks), items, buckets, batches, latent cache."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from imagegen import textured
from lib_lora_trainer.config.steps import batches_per_epoch, plan_steps
from lib_lora_trainer.engines.builtin.buckets import BucketSet, make_bucket_resolutions
from lib_lora_trainer.engines.builtin.data import TrainingData, build_training_data
from lib_lora_trainer.engines.builtin.dataset_config import (DatasetConfigError, load_dataset_blueprint,
                                                             verify_bucket_reso_steps)

BUCKETS = {"enable_bucket": True, "min_bucket_reso": 128, "max_bucket_reso": 512}


def make_images(folder: Path, sizes, captions=None, ext=".txt", seed=0) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i, size in enumerate(sizes):
        textured(seed + i, size).save(folder / f"img_{i:02d}.png")
        if captions is not None and captions[i] is not None:
            (folder / f"img_{i:02d}{ext}").write_text(captions[i] + "\n", encoding="utf-8")
    return folder


def cfg(image_dir, general=None, dataset=None, **subset):
    return {"general": dict(general or {}),
            "datasets": [{**(dataset or {}), "subsets": [{"image_dir": str(image_dir), **subset}]}]}


@pytest.fixture()
def square_dir(tmp_path):
    return make_images(tmp_path / "sq", [(160, 160)] * 3, ["zkperson, red, blue, green"] * 3)


# --- blueprint -------------------------------------------------------------------------------

def test_fallback_order_subset_dataset_general_run_default(square_dir):
    run = {"resolution": "256,320", "train_batch_size": 3, "caption_extension": ".txt", "keep_tokens": 2}
    spec, = load_dataset_blueprint(cfg(square_dir), run)
    sub = spec.subsets[0]
    assert spec.resolution == (256, 320) and spec.batch_size == 3        # run config
    assert sub.caption_extension == ".txt" and sub.keep_tokens == 2
    assert sub.num_repeats == 1 and spec.min_bucket_reso == 256 and not sub.flip_aug   # defaults
    assert load_dataset_blueprint(cfg(square_dir), {"resolution": 512})[0].subsets[0].caption_extension \
        == ".caption"                                                   # sd-scripts' argparse default
    conf = cfg(square_dir, general={"resolution": 512, "keep_tokens": 3, "batch_size": 2},
               dataset={"resolution": [768, 512], "keep_tokens": 4}, keep_tokens=5)
    spec, = load_dataset_blueprint(conf, run)
    assert spec.resolution == (768, 512) and spec.batch_size == 2 and spec.subsets[0].keep_tokens == 5
    del conf["datasets"][0]["subsets"][0]["keep_tokens"]
    assert load_dataset_blueprint(conf, run)[0].subsets[0].keep_tokens == 4
    del conf["datasets"][0]["keep_tokens"], conf["datasets"][0]["resolution"]
    spec, = load_dataset_blueprint(conf, run)
    assert spec.subsets[0].keep_tokens == 3 and spec.resolution == (512, 512)
    assert load_dataset_blueprint(cfg(square_dir), {"resolution": 512, "prior_loss_weight": 0.5})[0] \
        .prior_loss_weight == 0.5


@pytest.mark.parametrize("conf_change, words", [
    (lambda c: c["general"].update(colour_aug=True), "unknown key `colour_aug`"),
    (lambda c: c["datasets"][0]["subsets"][0].update(color_aug=True), "not implemented by the builtin engine"),
    (lambda c: c["general"].update(caption_prefix="x"), "`caption_prefix` is known to sd-scripts"),
    (lambda c: c["datasets"][0].update(alpha_mask=True), "not implemented"),
    (lambda c: c["datasets"][0]["subsets"][0].update(batch_size=2), "only in [general] or [[datasets]]"),
    (lambda c: c["general"].update(image_dir="x"), "only in [[datasets.subsets]]"),
    (lambda c: c["general"].update(shuffle_caption="yes"), "`shuffle_caption` must be true or false"),
    (lambda c: c["general"].update(num_repeats=2.5), "`num_repeats` must be an integer"),
    (lambda c: c["general"].update(resolution="512"), "`resolution` must be an integer"),
    (lambda c: c["general"].update(resolution=500), "not a multiple of 64: use 512, 768 or 1024"),
    (lambda c: c["general"].pop("resolution"), "resolution is required"),
    (lambda c: c["datasets"][0]["subsets"][0].update(num_repeats=0), "num_repeats must be >= 1"),
    (lambda c: c["datasets"][0]["subsets"][0].pop("image_dir"), "`image_dir` is required"),
    (lambda c: c["datasets"][0]["subsets"][0].update(image_dir="/nonexistent/x"), "is not a folder"),
    (lambda c: c["general"].update(min_bucket_reso=1024, max_bucket_reso=512), "min_bucket_reso 1024 is larger"),
    (lambda c: c["general"].update(enable_bucket=True, min_bucket_reso=640), "shorter side 512"),
    (lambda c: c["general"].update(caption_dropout_rate=1.5), "between 0 and 1"),
    (lambda c: c["general"].update(caption_extension="txt"), 'e.g. ".txt"'),
    (lambda c: c.update(dataset={}), "unknown top-level key `dataset`"),
])
def test_config_errors_name_key_and_fix(square_dir, conf_change, words):
    conf = cfg(square_dir, general={"resolution": 512})
    conf_change(conf)
    with pytest.raises(DatasetConfigError) as e:
        load_dataset_blueprint(conf, {}, source="ds.toml")
    assert words in str(e.value)
    assert "ds.toml" in str(e.value) or "run config" in str(e.value)


def test_run_config_errors(square_dir):
    with pytest.raises(DatasetConfigError, match="`color_aug = True` is known to sd-scripts"):
        load_dataset_blueprint(cfg(square_dir), {"resolution": 512, "color_aug": True})
    assert load_dataset_blueprint(cfg(square_dir), {"resolution": 512, "color_aug": False,
                                                    "caption_separator": ","})
    with pytest.raises(DatasetConfigError, match='"512,768"'):
        load_dataset_blueprint(cfg(square_dir), {"resolution": "512x768"})
    with pytest.raises(DatasetConfigError, match="No dataset"):
        load_dataset_blueprint(None, {"resolution": 512})
    spec, = load_dataset_blueprint(cfg(square_dir, general=BUCKETS | {"bucket_reso_steps": 32}), {"resolution": 256})
    with pytest.raises(DatasetConfigError, match="multiple of 64"):
        verify_bucket_reso_steps([spec], 64)


def test_empty_dataset_and_empty_or_bad_caption(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "sub").mkdir()
    make_images(tmp_path / "empty" / "sub", [(64, 64)])  # subfolders are not read
    with pytest.raises(DatasetConfigError, match="no training images"):
        load_dataset_blueprint(cfg(tmp_path / "empty"), {"resolution": 512})
    d = make_images(tmp_path / "cap", [(64, 64), (64, 64)], ["a, b", None])
    (d / "img_01.txt").write_text("", encoding="utf-8")
    with pytest.raises(DatasetConfigError, match=r"img_01\.txt.* is empty"):
        TrainingData.from_config(cfg(d, caption_extension=".txt"), {"resolution": 64})
    (d / "img_01.txt").write_bytes(b"caf\xe9\n")
    with pytest.raises(DatasetConfigError, match="not UTF-8"):
        TrainingData.from_config(cfg(d, caption_extension=".txt"), {"resolution": 64})


def test_folder_convention(tmp_path):
    train = tmp_path / "train"
    make_images(train / "10_vadym man", [(96, 96)] * 2, ["vadym man, smiling", None])
    make_images(train / "5_a_b", [(96, 96)])
    make_images(train / "notes", [(96, 96)])
    make_images(train, [(96, 96)])  # loose images: ignored
    make_images(tmp_path / "reg" / "1_man", [(96, 96)] * 3)
    bp = load_dataset_blueprint(None, {"train_data_dir": str(train), "reg_data_dir": str(tmp_path / "reg"),
                                       "resolution": "64", "caption_extension": ".txt"})
    subs = bp[0].subsets
    assert [(s.image_dir.name, s.num_repeats, s.class_tokens, s.is_reg) for s in subs] == [
        ("10_vadym man", 10, "vadym man", False), ("5_a_b", 5, "a_b", False), ("1_man", 1, "man", True)]
    assert any("'notes' is skipped" in w for w in bp.warnings)
    data = TrainingData(bp, seed=1)
    assert data.num_train_images == 25 and data.num_reg_images == 3
    assert [i.caption for i in data.items[:2]] == ["vadym man, smiling", "vadym man"]
    assert data.dataset_dirs() == {"10_vadym man": {"n_repeats": 10, "img_count": 2},
                                   "5_a_b": {"n_repeats": 5, "img_count": 1}}
    assert data.reg_dataset_dirs() == {"1_man": {"n_repeats": 1, "img_count": 3}}
    assert data.tag_frequency()["10_vadym man"] == {"vadym man": 2, "smiling": 1}
    assert data.bucket_info() is None


def test_no_data_found_message(tmp_path):
    make_images(tmp_path / "imgs" / "photos", [(64, 64)])
    make_images(tmp_path / "imgs", [(64, 64)])
    with pytest.raises(DatasetConfigError) as e:
        load_dataset_blueprint(None, {"train_data_dir": str(tmp_path / "imgs"), "resolution": 512})
    msg = str(e.value)
    assert "No data found" in msg and "`100_name`" in msg and "'photos'" in msg and "1 images directly" in msg
    with pytest.raises(DatasetConfigError, match="is not a folder"):
        load_dataset_blueprint(None, {"train_data_dir": str(tmp_path / "missing"), "resolution": 512})


# --- items, repeats, buckets -----------------------------------------------------------------

def _bucketed_count(data: TrainingData) -> dict[Path, int]:
    counts: dict[Path, int] = {}
    for members in data.buckets[0].values():
        for i in members:
            counts[data.items[i].path] = counts.get(data.items[i].path, 0) + 1
    return counts


def test_reg_images_cycle_to_train_count(tmp_path):
    train = make_images(tmp_path / "t", [(64, 64)] * 3)
    reg = make_images(tmp_path / "r", [(64, 64)] * 5, seed=50)
    conf = {"general": {"resolution": 64}, "datasets": [{"subsets": [
        {"image_dir": str(train), "num_repeats": 4}, {"image_dir": str(reg), "is_reg": True}]}]}
    data = TrainingData.from_config(conf, {}, seed=0)
    counts = _bucketed_count(data)
    assert data.num_train_images == 12 and data.num_reg_images == 5
    assert [counts[reg / f"img_{i:02d}.png"] for i in range(5)] == [3, 3, 2, 2, 2]   # 12 in all
    # more reg images than train images: only the first ones are used (sd-scripts stops at the count)
    conf["datasets"][0]["subsets"][0]["num_repeats"] = 1
    conf["datasets"][0]["subsets"][1]["num_repeats"] = 2
    counts = _bucketed_count(TrainingData.from_config(conf, {}, seed=0))
    assert [counts.get(reg / f"img_{i:02d}.png", 0) for i in range(5)] == [2, 2, 0, 0, 0]


def test_bucket_resolutions_and_assignment():
    resos = make_bucket_resolutions((256, 256), 128, 512, 64)
    assert all(w % 64 == 0 and h % 64 == 0 and w * h <= 256 * 256 for w, h in resos)
    bs = BucketSet((256, 256), True, 128, 512, 64)
    wide, tall, square = bs.select(400, 200), bs.select(200, 400), bs.select(300, 300)
    assert wide.bucket[0] > wide.bucket[1] and tall.bucket[1] > tall.bucket[0] and square.bucket == (256, 256)
    assert wide.bucket == (320, 192) and wide.resized[1] == 192 and wide.resized[0] >= 320
    # bucket_no_upscale: a small image is only cropped to the step grid, never enlarged
    small = BucketSet((256, 256), True, 128, 512, 64, no_upscale=True).select(200, 150)
    assert small.bucket == (192, 128) and small.resized == (200, 150)
    big = BucketSet((256, 256), True, 128, 512, 64, no_upscale=True).select(1000, 500)
    assert big.bucket[0] * big.bucket[1] <= 256 * 256 and big.bucket[0] % 64 == 0 and big.bucket[1] % 64 == 0


@pytest.fixture()
def mixed(tmp_path):
    a = make_images(tmp_path / "a", [(400, 200), (420, 210), (200, 400), (260, 260), (300, 290)],
                    ["zk, one, two, three, four"] * 5)
    b = make_images(tmp_path / "b", [(380, 190), (250, 250), (190, 380)], ["zk, five, six"] * 3, seed=20)
    return {"general": BUCKETS | {"resolution": 256, "batch_size": 2, "caption_extension": ".txt"},
            "datasets": [{"subsets": [{"image_dir": str(a), "num_repeats": 3},
                                      {"image_dir": str(b), "num_repeats": 2, "flip_aug": True}]}]}


def test_batches_stay_in_one_bucket_and_match_step_arithmetic(mixed):
    data = TrainingData.from_config(mixed, {}, seed=3)
    sizes = data.bucket_sizes()[0]
    assert sum(sizes) == data.num_train_images == 21
    assert data.num_batches_per_epoch == batches_per_epoch(sizes, 2) == len(data.plan_epoch(0))
    assert data.num_batches_per_epoch == plan_steps(21, 1, batch_size=2, bucket_sizes=sizes).steps_per_epoch
    assert data.items[0].choice.bucket == (320, 192)                  # the 2:1 image: a wide bucket
    for reso, _ in data.buckets[0].items():
        assert reso[0] % 64 == 0 and reso[1] % 64 == 0 and reso[0] * reso[1] <= 256 * 256
    seen = 0
    for batch in data.epoch_batches(0):
        assert len({data.items[i].choice.bucket for i in data.plan_epoch(0)[batch.index].items}) == 1
        h, w = batch.target_sizes[0]
        assert batch.images.shape[1:] == (3, h, w) and batch.images.dtype == torch.float32
        assert -1.0 <= batch.images.min() and batch.images.max() <= 1.0
        seen += batch.images.shape[0]
    assert seen == 21
    info = data.bucket_info()
    assert sum(b["count"] for b in info["buckets"].values()) == 21 and info["mean_img_ar_error"] < 0.2


def test_without_buckets_every_image_is_cropped_to_the_resolution(mixed):
    mixed["general"] = {"resolution": [192, 128], "batch_size": 4}
    data = TrainingData.from_config(mixed, {}, seed=0)
    assert list(data.buckets[0]) == [(192, 128)]
    assert all(b.images.shape[2:] == (128, 192) for b in data.epoch_batches(1))


def test_caption_shuffle_keep_tokens_and_dropout(square_dir):
    conf = cfg(square_dir, general={"resolution": 64, "caption_extension": ".txt"},
               shuffle_caption=True, keep_tokens=1, num_repeats=20)
    data = TrainingData.from_config(conf, {}, seed=0)
    captions = [c for b in data.epoch_batches(0) for c in b.captions]
    assert all(c.split(", ")[0] == "zkperson" for c in captions)
    assert all(sorted(c.split(", ")) == sorted(["zkperson", "red", "blue", "green"]) for c in captions)
    assert len(set(captions)) > 1
    conf["datasets"][0]["subsets"][0].update(caption_dropout_rate=1.0)
    data = TrainingData.from_config(conf, {}, seed=0)
    assert {c for b in data.epoch_batches(0) for c in b.captions} == {""}
    assert data.has_caption_augmentation()


def test_determinism_and_epochs(mixed):
    one, two = TrainingData.from_config(mixed, {}, seed=7), TrainingData.from_config(mixed, {}, seed=7)
    b1, b2 = list(one.epoch_batches(2)), list(two.epoch_batches(2, num_workers=2))
    assert [b.paths for b in b1] == [b.paths for b in b2] and [b.flipped for b in b1] == [b.flipped for b in b2]
    assert all(torch.equal(x.images, y.images) for x, y in zip(b1, b2))
    assert any(any(b.flipped) for b in b1)
    assert one.plan_epoch(2) != one.plan_epoch(3)
    assert TrainingData.from_config(mixed, {}, seed=8).plan_epoch(2) != one.plan_epoch(2)


@pytest.mark.parametrize("world", [2, 3, 4])
def test_rank_sharding_is_disjoint_and_covers(mixed, world):
    data = TrainingData.from_config(mixed, {}, seed=5)
    total = data.num_batches_per_epoch                 # 11 batches
    shards = [data.rank_plans(4, r, world) for r in range(world)]
    assert {len(s) for s in shards} == {math.ceil(total / world)} == {data.batches_per_rank(world)}
    real = [p.index for s in shards for p in s if not p.padding]
    assert sorted(real) == list(range(total))           # disjoint and covering
    assert sum(p.padding for s in shards for p in s) == math.ceil(total / world) * world - total
    loaded = [b.index for b in data.epoch_batches(4, rank=1, world_size=world)]
    assert loaded == [p.index for p in shards[1]]


# --- latent cache ----------------------------------------------------------------------------

class CountingEncoder:
    def __init__(self):
        self.calls, self.images = 0, 0

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        self.images += x.shape[0]
        return torch.nn.functional.avg_pool2d(x, 8)[:, :3].repeat(1, 2, 1, 1)[:, :4]


def test_latent_cache_on_disk_reused_and_invalidated(mixed, tmp_path):
    enc = CountingEncoder()
    data = TrainingData.from_config(mixed, {}, seed=0)
    report = data.cache_latents(enc, to_disk=True, batch_size=4, cache_key="vae-a")
    assert report.encoded == 8 + 3 and report.written == 8 and enc.images == 11   # b/ is flip_aug: + 3
    files = sorted((tmp_path / "a").glob("*_lt.npz"))
    assert len(files) == 5 and files[0].name == "img_00_320x192_lt.npz"
    batch = next(iter(data.epoch_batches(0)))
    h, w = batch.target_sizes[0]
    assert batch.images is None and batch.latents.shape[1:] == (4, h // 8, w // 8)

    enc2 = CountingEncoder()
    again = TrainingData.from_config(mixed, {}, seed=0)
    report = again.cache_latents(enc2, to_disk=True, batch_size=4, cache_key="vae-a")
    assert enc2.calls == 0 and report.loaded == 8
    assert all(torch.equal(x.latents, y.latents) for x, y in zip(data.epoch_batches(1), again.epoch_batches(1)))

    textured(99, (400, 200)).save(tmp_path / "a" / "img_00.png")     # same size, new picture
    enc3 = CountingEncoder()
    report = TrainingData.from_config(mixed, {}, seed=0).cache_latents(enc3, True, 4, cache_key="vae-a")
    assert enc3.images == 1 and report.loaded == 7
    enc4 = CountingEncoder()
    TrainingData.from_config(mixed, {}, seed=0).cache_latents(enc4, True, 4, cache_key="vae-b")
    assert enc4.images == 11                                          # another encoder: all stale


def test_latent_cache_in_memory_flips(mixed, tmp_path):
    enc = CountingEncoder()
    data = TrainingData.from_config(mixed, {}, seed=0)
    data.cache_latents(enc, to_disk=False, batch_size=3)
    assert enc.images == 11 and not list(tmp_path.rglob("*.npz"))
    direct = TrainingData.from_config(mixed, {}, seed=0)
    for cached, pixels in zip(data.epoch_batches(0), direct.epoch_batches(0)):
        assert cached.flipped == pixels.flipped
        assert torch.allclose(cached.latents, CountingEncoder()(pixels.images), atol=1e-5)


def test_build_training_data_and_metadata(mixed, tmp_path):
    (tmp_path / "empty").mkdir()
    mixed["datasets"][0]["subsets"].append({"image_dir": str(tmp_path / "empty")})
    bp = load_dataset_blueprint(mixed, {})
    assert any("no images" in w and "empty" in w for w in bp.warnings)
    data = build_training_data(bp, seed=0)
    assert data.tag_frequency()["a"] == {"zk": 5, "one": 5, "two": 5, "three": 5, "four": 5}
    assert data.tag_frequency()["empty"] == {}      # sd-scripts counts tags before dropping the folder
    assert data.batch_size == 2
    info = pytest.importorskip("lib_lora_trainer.lora_file.dataset_info")
    infos = data.dataset_infos()
    meta = infos[0].to_metadata()
    assert meta["num_train_images"] == 21 and [s["img_count"] for s in meta["subsets"]] == [5, 3]
    assert meta["bucket_info"] == data.bucket_info() and meta["min_bucket_reso"] == 128
    assert info.merged_tag_frequency(infos) == data.tag_frequency()
    assert info.dataset_dirs(infos) == data.dataset_dirs() == {"a": {"n_repeats": 3, "img_count": 5},
                                                               "b": {"n_repeats": 2, "img_count": 3}}


def test_bad_images_missing_captions_and_json_null(tmp_path):
    d = make_images(tmp_path / "small", [(40, 40), (128, 128)], ["a", None])
    conf = cfg(d, general=BUCKETS | {"resolution": 256, "bucket_no_upscale": True, "caption_extension": ".txt",
                                     "batch_size": None}, class_tokens="zk")
    with pytest.raises(DatasetConfigError, match=r"img_00\.png: image 40x40 is smaller than bucket_reso_steps 64"):
        TrainingData.from_config(conf, {})
    (d / "img_00.png").write_bytes(b"not a png")
    with pytest.raises(DatasetConfigError, match=r"img_00\.png: cannot read this image"):
        TrainingData.from_config(conf, {})
    (d / "img_00.png").unlink()
    data = TrainingData.from_config(conf, {})
    assert data.items[0].caption == "zk" and any("1 of 1 images have no .txt caption" in w for w in data.warnings)
    assert data.batch_size == 1 and data.items[0].choice.bucket == (128, 128)

"""lora_file: metadata, hashes and file I/O checked against real sd-scripts v0.10.1 output."""

import hashlib
import json
import math
import os
import re
import struct
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
safetensors_torch = pytest.importorskip("safetensors.torch")
try:
    import tomllib
except ImportError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

from lib_lora_trainer.lora_file import (
    DatasetInfo,
    SubsetInfo,
    TrainingMetadataInput,
    addnet_hash_legacy,
    addnet_hash_safetensors,
    build_metadata,
    finalize_metadata,
    format_optimizer,
    load_lora,
    make_bucket_info,
    model_hash_legacy,
    read_lora_header,
    save_lora,
    sha256_file,
)
from lib_lora_trainer.lora_file import io as lora_io
from lib_lora_trainer.lora_file.metadata import base_model_version, num_epochs_for

ROOT = Path(__file__).resolve().parent.parent


def _fixture_dir() -> Path | None:
    rel = Path("shared/fixtures/sd-scripts/v0.10.1")
    for cand in (os.environ.get("SD_SCRIPTS_FIXTURES"), ROOT / rel, ROOT.parent / rel):
        if cand and Path(cand).is_dir():
            return Path(cand)
    return None


FIX = _fixture_dir()
needs_fixtures = pytest.mark.skipif(FIX is None, reason="sd-scripts fixtures not present")
FIXTURE_FILES = sorted(p.name for p in FIX.glob("*.metadata.json")) if FIX else []


# ---------- building the trainer's view of a fixture run ----------

def _captions(folder: Path) -> list[str]:
    # sd-scripts: first line of <image>.txt, stripped (all fixture images have one).
    return [(folder / f"{img.stem}.txt").read_text("utf-8").splitlines()[0].strip()
            for img in sorted(folder.glob("*.png"))]


def _run_input(run: str, meta: dict) -> TrainingMetadataInput:
    args = tomllib.loads((FIX / f"{run}.run.toml").read_text("utf-8"))
    ds_toml = FIX / f"{run}.dataset.toml"
    data_root = FIX / "dataset"
    if ds_toml.exists():
        cfg = tomllib.loads(ds_toml.read_text("utf-8"))
        general = cfg.get("general", {})
        datasets = []
        for d in cfg["datasets"]:
            opts = {**general, **d}
            subsets = [SubsetInfo(
                image_dir=s["image_dir"], captions=_captions(data_root / Path(s["image_dir"]).name),
                num_repeats=s.get("num_repeats", 1), class_tokens=s.get("class_tokens"),
                shuffle_caption=s.get("shuffle_caption", opts.get("shuffle_caption", False)),
                keep_tokens=s.get("keep_tokens", opts.get("keep_tokens", 0)),
            ) for s in d["subsets"]]
            datasets.append(DatasetInfo(resolution=opts["resolution"], subsets=subsets,
                                        batch_size=opts.get("batch_size", 1),
                                        enable_bucket=opts.get("enable_bucket", False)))
        use_config, resolution = True, None
    else:  # classic layout: one dataset, a subset per "<repeats>_<tokens>" folder
        subsets = []
        for folder in sorted(p for p in data_root.iterdir() if p.is_dir()):
            repeats, tokens = folder.name.split("_", 1)
            subsets.append(SubsetInfo(image_dir=f"{args['train_data_dir']}/{folder.name}",
                                      captions=_captions(folder), num_repeats=int(repeats),
                                      class_tokens=tokens))
        datasets = [DatasetInfo(resolution=int(args["resolution"]), subsets=subsets,
                                batch_size=args["train_batch_size"])]
        use_config, resolution = False, args["resolution"]
    batches = sum(math.ceil(ds.num_train_images / ds.batch_size) for ds in datasets)  # one bucket each
    return TrainingMetadataInput(
        session_id=int(meta["ss_session_id"]),
        training_started_at=float(meta["ss_training_started_at"]),
        output_name=args["output_name"],
        model_type="sdxl" if run.startswith("sdxl") else "sd1",
        base_model=args["pretrained_model_name_or_path"],  # absent here: pass its hashes
        base_model_hash=meta["ss_sd_model_hash"],
        base_model_sha256=meta["ss_new_sd_model_hash"],
        datasets=datasets,
        network_module=args["network_module"],
        network_dim=args["network_dim"],
        network_alpha=args["network_alpha"],
        learning_rate=args["learning_rate"],
        lr_scheduler=args["lr_scheduler"],
        optimizer=format_optimizer(torch.optim.AdamW),
        max_train_steps=args["max_train_steps"],
        num_epochs=num_epochs_for(args["max_train_steps"], batches),
        num_batches_per_epoch=batches,
        seed=args["seed"],
        mixed_precision=args["mixed_precision"],
        cache_latents=args["cache_latents"],
        use_dataset_config=use_config,
        resolution=resolution,
    )


def _split(name: str) -> tuple[str, str]:
    run, rest = name.split(".", 1)
    return run, rest[: -len(".metadata.json")]


def _finalized(name: str) -> tuple[dict, dict, TrainingMetadataInput]:
    run, stem = _split(name)
    expected = json.loads((FIX / name).read_text("utf-8"))
    params = _run_input(run, expected)
    m = re.search(r"-step(\d+)$", stem)
    # Step checkpoints carry the 0-based running epoch (0 here); the final file the epoch count.
    steps, epoch = (int(m.group(1)), 0) if m else (params.max_train_steps, params.num_epochs)
    md = finalize_metadata(build_metadata(params), steps, epoch, float(expected["ss_training_finished_at"]))
    return md, expected, params


def _fixture_tensors(run: str, stem: str) -> dict:
    keys = json.loads((FIX / f"{run}.{stem}.keys.json").read_text("utf-8"))
    dt = {"F32": torch.float32, "I64": torch.int64, "F16": torch.float16}
    g = torch.Generator().manual_seed(0)
    out = {}
    for k, (shape, dtype) in keys.items():
        out[k] = (torch.tensor(1) if dtype == "I64" else torch.randn(shape, generator=g)).to(dt[dtype])
        if dtype == "I64":
            out[k] = out[k].reshape(shape)
    return out


# ---------- fixture comparisons ----------

@needs_fixtures
@pytest.mark.parametrize("name", FIXTURE_FILES)
def test_metadata_matches_sd_scripts(name):
    md, expected, _ = _finalized(name)
    # Key set equals the real file's once save_lora adds the two sshs_* hashes.
    assert set(md) | {"sshs_model_hash", "sshs_legacy_hash"} == set(expected)
    # Values: all except the ones that depend on the weights and on the clock's time zone.
    skip = {"sshs_model_hash", "sshs_legacy_hash", "modelspec.date"}
    diffs = {k: (md[k], expected[k]) for k in expected if k not in skip and md.get(k) != expected[k]}
    assert diffs == {}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", md["modelspec.date"])


@needs_fixtures
def test_fixture_coverage():
    runs = {_split(n)[0] for n in FIXTURE_FILES}
    assert {"sd15_rich", "sdxl_rich", "sd15_folder", "sd15_alpha_float"} <= runs


@needs_fixtures
@pytest.mark.parametrize("run", ["sd15_rich", "sd15_alpha_float", "sdxl_rich"])
def test_written_file_matches_sd_scripts_layout(tmp_path, run):
    stem = "VadymPanchenko_v1"
    md, expected, _ = _finalized(f"{run}.{stem}.metadata.json")
    out = tmp_path / f"{stem}.safetensors"
    save_lora(out, _fixture_tensors(run, stem), md)
    entries, written = read_lora_header(out)
    keys = json.loads((FIX / f"{run}.{stem}.keys.json").read_text("utf-8"))
    assert {k: [shape, dt] for k, (shape, dt) in entries.items()} == keys  # alpha I64 vs F32 kept
    assert set(written) == set(expected)


# ---------- hashes ----------

def _blob(n: int, seed: int = 0) -> bytes:
    return bytes((i * 131 + seed) % 251 for i in range(n))


def test_hash_helpers(tmp_path):
    header = json.dumps({"__metadata__": {"a": "b"}}).encode()
    payload = _blob(3000)
    data = struct.pack("<Q", len(header)) + header + payload
    assert addnet_hash_safetensors(data) == hashlib.sha256(payload).hexdigest()
    assert addnet_hash_legacy(data) == hashlib.sha256(b"").hexdigest()[:8] == "e3b0c442"  # < 1 MiB
    big = _blob(0x100000 + 0x10000 + 777, 7)
    assert addnet_hash_legacy(big) == hashlib.sha256(big[0x100000:0x110000]).hexdigest()[:8]
    f = tmp_path / "model.safetensors"
    f.write_bytes(big)
    assert model_hash_legacy(f) == addnet_hash_legacy(big)
    assert sha256_file(f) == hashlib.sha256(big).hexdigest()


def _sample_tensors(alpha_int=True) -> dict:
    g = torch.Generator().manual_seed(1)
    t = {}
    for i in range(3):  # ~2.3 MB so the legacy-hash window falls inside the data
        base = f"lora_unet_down_blocks_{i}_attentions_0_proj_in"
        t[f"{base}.lora_down.weight"] = torch.randn(8, 320 * 64, generator=g)
        t[f"{base}.lora_up.weight"] = torch.randn(320, 8, generator=g)
        t[f"{base}.alpha"] = torch.tensor(4) if alpha_int else torch.tensor(4.0)
    return t


SAMPLE_MD = {"ss_network_dim": "8", "ss_network_alpha": "4", "modelspec.title": "x",
             "modelspec.sai_model_spec": "1.0.1"}


def test_stored_hashes_follow_sd_scripts_algorithm(tmp_path):
    out = tmp_path / "a.safetensors"
    save_lora(out, _sample_tensors(), SAMPLE_MD)
    raw = out.read_bytes()
    tensors, md = load_lora(out)
    # sshs_model_hash: sha256 of the bytes after the header of the file itself.
    n = struct.unpack("<Q", raw[:8])[0]
    assert md["sshs_model_hash"] == hashlib.sha256(raw[8 + n:]).hexdigest()
    # sshs_legacy_hash: 64 KiB at 1 MiB of a serialisation holding only the ss_* metadata
    # (so it generally differs from the legacy hash of the final file).
    ss_only = safetensors_torch.save(tensors, {k: v for k, v in md.items() if k.startswith("ss_")})
    assert md["sshs_legacy_hash"] == hashlib.sha256(ss_only[0x100000:0x110000]).hexdigest()[:8]
    assert addnet_hash_safetensors(ss_only) == md["sshs_model_hash"]  # the metadata never matters
    # Changing non-ss_ metadata changes neither hash.
    out2 = tmp_path / "b.safetensors"
    save_lora(out2, tensors, {**SAMPLE_MD, "modelspec.title": "something much longer" * 20})
    md2 = read_lora_header(out2)[1]
    assert (md2["sshs_model_hash"], md2["sshs_legacy_hash"]) == (md["sshs_model_hash"], md["sshs_legacy_hash"])


# ---------- file I/O ----------

def test_round_trip_and_header(tmp_path):
    src = _sample_tensors(alpha_int=False)
    out = tmp_path / "lora.safetensors"
    save_lora(out, src, SAMPLE_MD)
    tensors, md = load_lora(out)
    assert set(tensors) == set(src)
    for k in src:
        assert tensors[k].dtype == src[k].dtype and torch.equal(tensors[k], src[k])
    assert {k: v for k, v in md.items() if not k.startswith("sshs_")} == SAMPLE_MD
    entries, md_h = read_lora_header(out)
    assert md_h == md
    assert entries == {k: (list(t.shape), {torch.float32: "F32"}[t.dtype]) for k, t in tensors.items()}
    assert [p.name for p in tmp_path.iterdir()] == ["lora.safetensors"]


def test_save_dtype_casts_every_tensor_like_sd_scripts(tmp_path):
    out = tmp_path / "half.safetensors"
    src = _sample_tensors()
    save_lora(out, src, SAMPLE_MD, save_dtype=torch.float16)
    entries, _ = read_lora_header(out)
    assert {dt for _, dt in entries.values()} == {"F16"}  # alpha too: save_weights casts all
    save_lora(out, src, SAMPLE_MD)  # no save_dtype: as given
    assert read_lora_header(out)[0]["lora_unet_down_blocks_0_attentions_0_proj_in.alpha"] == ([], "I64")


@pytest.mark.parametrize("where", ["replace", "serialize", "fsync", "write"])
def test_failed_write_keeps_previous_file(tmp_path, monkeypatch, where):
    out = tmp_path / "lora.safetensors"
    save_lora(out, _sample_tensors(), SAMPLE_MD)
    before = out.read_bytes()

    def boom(*a, **k):
        raise OSError("disk full")

    if where == "replace":
        monkeypatch.setattr(lora_io.os, "replace", boom)
    elif where == "fsync":
        monkeypatch.setattr(lora_io.os, "fsync", boom)
    elif where == "serialize":
        import safetensors.torch   # lora_file.io imports it where it writes (no torch to read a header)

        real = safetensors.torch.save
        calls = []

        def second_call_fails(*a, **k):  # the hash serialisation passes, the file's one fails
            calls.append(1)
            if len(calls) == 2:
                raise OSError("boom")
            return real(*a, **k)

        monkeypatch.setattr(safetensors.torch, "save", second_call_fails)
    else:  # the temp file gets half the bytes, then the write fails
        real_write = Path.write_bytes

        def half_then_fail(self, data):
            real_write(self, data[: len(data) // 2])
            raise OSError("no space left")

        monkeypatch.setattr(Path, "write_bytes", half_then_fail)
    with pytest.raises(OSError):
        save_lora(out, _sample_tensors(alpha_int=False), {**SAMPLE_MD, "modelspec.title": "new"})
    assert out.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["lora.safetensors"]  # no temp left behind


def test_first_write_failure_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(lora_io.os, "replace", lambda *a: (_ for _ in ()).throw(OSError("x")))
    with pytest.raises(OSError):
        save_lora(tmp_path / "new.safetensors", _sample_tensors(), SAMPLE_MD)
    assert list(tmp_path.iterdir()) == []


def test_metadata_must_be_strings(tmp_path):
    with pytest.raises(TypeError):
        save_lora(tmp_path / "x.safetensors", _sample_tensors(), {"ss_network_dim": 8})


@pytest.mark.parametrize("content", [b"", b"abc", b"PK\x03\x04" + b"\x00" * 200, b"hello world, not a model" * 10,
                                     struct.pack("<Q", 5) + b"{bad}"])
def test_not_safetensors(tmp_path, content):
    f = tmp_path / "weird.safetensors"
    f.write_bytes(content)
    for fn in (read_lora_header, load_lora):
        with pytest.raises(ValueError, match="weird.safetensors.*not a safetensors file"):
            fn(f)


def test_safetensors_but_not_lora(tmp_path):
    f = tmp_path / "checkpoint.safetensors"
    safetensors_torch.save_file({"model.diffusion_model.out.0.weight": torch.zeros(4)}, str(f))
    for fn in (read_lora_header, load_lora):
        with pytest.raises(ValueError, match="checkpoint.safetensors.*not a LoRA"):
            fn(f)


def test_truncated_lora(tmp_path):
    f = tmp_path / "cut.safetensors"
    save_lora(f, _sample_tensors(), SAMPLE_MD)
    f.write_bytes(f.read_bytes()[:-1000])
    read_lora_header(f)  # the header alone is still fine
    with pytest.raises(ValueError, match="cut.safetensors"):
        load_lora(f)


# ---------- metadata rules beyond the fixtures ----------

def _params(**kw) -> TrainingMetadataInput:
    ds = DatasetInfo(resolution=512, subsets=[SubsetInfo("/data/10_ohwx", ["ohwx, Man", "ohwx"], 10, "ohwx")])
    base = dict(session_id=1, training_started_at=1.5, output_name="out", model_type="sd1",
                base_model="runwayml/stable-diffusion-v1-5", datasets=[ds], network_dim=8,
                network_alpha=4, learning_rate=1e-4, optimizer="torch.optim.adamw.AdamW",
                max_train_steps=100, num_epochs=5, num_batches_per_epoch=20, seed=1)
    base.update(kw)
    return TrainingMetadataInput(**base)


@pytest.mark.parametrize("model_type,vpred,version,arch,reso", [
    ("sd1", False, "sd_v1", "stable-diffusion-v1/lora", "512x512"),
    ("sd1", True, "sd_v1_v", "stable-diffusion-v1/lora", "512x512"),
    ("sd2", False, "sd_v2", "stable-diffusion-v2-512/lora", "512x512"),
    ("sd2", True, "sd_v2_v", "stable-diffusion-v2-768-v/lora", "768x768"),
    ("sdxl", False, "sdxl_base_v1-0", "stable-diffusion-xl-v1-base/lora", "1024x1024"),
])
def test_model_versions(model_type, vpred, version, arch, reso):
    md = build_metadata(_params(model_type=model_type, v_parameterization=vpred))
    assert base_model_version(model_type, vpred) == md["ss_base_model_version"] == version
    assert md["modelspec.architecture"] == arch and md["modelspec.resolution"] == reso
    assert md["modelspec.prediction_type"] == ("v" if vpred else "epsilon")
    assert md["ss_v2"] == str(model_type == "sd2")


def test_optional_keys():
    md = build_metadata(_params(network_args={"conv_dim": "4", "conv_alpha": "1"}, clip_skip=2,
                                trigger_phrase="ohwx", optimizer=format_optimizer(
                                    torch.optim.AdamW, {"weight_decay": 0.1, "betas": (0.9, 0.99)}),
                                min_timestep=100, network_alpha=4.0, lr_warmup_steps=0.1,
                                face_crop_aug_range=(2.0, 4.0), text_encoder_lr=5e-05))
    assert md["ss_network_args"] == '{"conv_dim": "4", "conv_alpha": "1", "dropout": null}'
    assert md["ss_optimizer"] == "torch.optim.adamw.AdamW(weight_decay=0.1,betas=(0.9, 0.99))"
    assert md["modelspec.encoder_layer"] == "2" and md["ss_clip_skip"] == "2"
    assert md["modelspec.trigger_phrase"] == "ohwx"
    assert md["modelspec.timestep_range"] == "100,1000"
    assert (md["ss_network_alpha"], md["ss_lr_warmup_steps"]) == ("4.0", "0.1")
    assert md["ss_face_crop_aug_range"] == "(2.0, 4.0)" and md["ss_text_encoder_lr"] == "5e-05"
    # A hub id is recorded as given, without hashes.
    assert md["ss_sd_model_name"] == "runwayml/stable-diffusion-v1-5" and "ss_sd_model_hash" not in md
    assert "ss_network_args" not in build_metadata(_params())


def test_base_model_hashes_from_file_and_folder(tmp_path):
    f = tmp_path / "base.safetensors"
    f.write_bytes(_blob(0x120000))
    md = build_metadata(_params(base_model=str(f)))
    assert md["ss_sd_model_name"] == "base.safetensors"
    assert md["ss_sd_model_hash"] == model_hash_legacy(f) and md["ss_new_sd_model_hash"] == sha256_file(f)
    md = build_metadata(_params(base_model=str(tmp_path), vae=str(f)))
    assert md["ss_sd_model_hash"] == md["ss_new_sd_model_hash"] == "IsADirectory"  # diffusers folder
    assert md["ss_vae_name"] == "base.safetensors" and md["ss_vae_hash"] == model_hash_legacy(f)


def test_dataset_details():
    reg = SubsetInfo("/d/reg/1_man", ["man"] * 3, 1, "man", is_reg=True)
    a = SubsetInfo("/d/x/10_ohwx", ["ohwx, Red Hat", "ohwx,  red hat ,"], 10, "ohwx")
    again = SubsetInfo("/d/y/10_ohwx", ["ohwx"], 2, "ohwx")
    empty = SubsetInfo("/d/z/3_none", [], 3)
    skipped = SubsetInfo("/d/z/0_off", ["off"], 0)
    ds = DatasetInfo(resolution=(768, 512), subsets=[a, reg, again, empty, skipped], batch_size=2,
                     enable_bucket=True, min_bucket_reso=256, max_bucket_reso=1024,
                     bucket_info=make_bucket_info({3: ((768, 512), 20), 4: ((512, 512), 0)}, 0.25))
    md = build_metadata(_params(datasets=[ds]))
    assert md["ss_num_train_images"] == "22" and md["ss_num_reg_images"] == "3"
    assert json.loads(md["ss_dataset_dirs"]) == {"10_ohwx": {"n_repeats": 10, "img_count": 2},
                                                 "10_ohwx (2)": {"n_repeats": 2, "img_count": 1}}
    # Folders sharing a name share a tag count; the empty folder keeps an empty entry; reg counted.
    assert json.loads(md["ss_tag_frequency"]) == {"10_ohwx": {"ohwx": 3, "red hat": 2},
                                                  "1_man": {"man": 3}, "3_none": {}}
    (d,) = json.loads(md["ss_datasets"])
    assert d["resolution"] == [768, 512] and [s["image_dir"] for s in d["subsets"]] == ["10_ohwx", "1_man", "10_ohwx"]
    assert d["bucket_info"] == {"buckets": {"3": {"resolution": [768, 512], "count": 20}}, "mean_img_ar_error": 0.25}
    folder = build_metadata(_params(datasets=[ds], use_dataset_config=False, resolution="768,512"))
    assert folder["ss_resolution"] == "(768, 512)" and folder["ss_total_batch_size"] == "2"
    assert folder["modelspec.resolution"] == "768x512"
    assert json.loads(folder["ss_reg_dataset_dirs"]) == {"1_man": {"n_repeats": 1, "img_count": 3}}
    assert "ss_datasets" not in folder and "ss_datasets" in md


def test_finalize():
    md = build_metadata(_params(output_name=None))
    out = finalize_metadata(md, 10, 0, 1700000000.25)
    assert (out["ss_steps"], out["ss_epoch"], out["ss_training_finished_at"]) == ("10", "0", "1700000000.25")
    assert out["modelspec.title"] == "LoRA@1700000000.25" and "ss_steps" not in md
    mini = finalize_metadata(md, 10, 1, 1700000000.25, minimal=True)
    assert {k for k in mini if not k.startswith("modelspec.")} == {
        "ss_v2", "ss_base_model_version", "ss_network_module", "ss_network_dim", "ss_network_alpha"}

"""Issue 15 item 6: on an exposed server (A1111's cmd_opts.disable_extension_access, the standalone
`ui` on a non-loopback address) the tab's folder fields open only folders inside the dataset roots,
like the API, with a message naming the roots. The handlers are called directly and through the
functions the built tab wires to its buttons; nothing outside the roots is read, listed or written."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from imagegen import tree_digest, write_dataset
from lib_lora_trainer.hosts.base import confined_folder, folder_limit
from lib_lora_trainer.hosts.standalone import StandaloneHost
from lib_lora_trainer.ui import dataset_section as D


@pytest.fixture
def world(tmp_path):
    host = StandaloneHost(lora_dir=tmp_path / "Lora", data_dir=tmp_path / "data", exposed_as="0.0.0.0")
    roots = host.dataset_roots()
    outside = write_dataset(tmp_path / "private" / "photos", n=3, size=(96, 96))
    inside = write_dataset(roots[0] / "mine", n=3, size=(96, 96))
    archive = tmp_path / "private" / "set.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for p in sorted(outside.iterdir()):
            zf.write(p, p.name)
    return host, roots, outside, inside, archive


def _refused(html: str, roots) -> bool:
    return "outside the dataset folders" in html and str(roots[0].resolve()) in html and "0.0.0.0" in html


def test_only_exposed_hosts_confine(tmp_path):
    local = StandaloneHost(data_dir=tmp_path / "a")
    assert folder_limit(local) is None and confined_folder(local, "/etc") == "/etc"
    exposed = StandaloneHost(data_dir=tmp_path / "b", exposed_as="192.168.1.5")
    limit = folder_limit(exposed)
    assert limit.roots == (tmp_path / "b" / "datasets",)
    with pytest.raises(ValueError, match="outside the dataset folders"):
        confined_folder(exposed, "/etc")
    assert confined_folder(exposed, "x") == str((tmp_path / "b" / "datasets" / "x").resolve())
    assert folder_limit(object()) is None   # a host without the method: not confined


def test_handlers_refuse_folders_outside_the_roots_and_touch_nothing(world, tmp_path):
    host, roots, outside, inside, archive = world
    limit = folder_limit(host)
    datasets_dir, thumbs = host.data_dir() / "datasets", host.data_dir() / "thumbnails"
    before, listed_before = tree_digest(outside.parent), sorted(datasets_dir.iterdir())

    folder, html, gallery, rels, count, _, stamp = D.load(str(outside), None, "zkperson", 64, datasets_dir, thumbs, limit)
    assert _refused(html, roots) and gallery == [] and rels == [] and count == 0 and stamp is None
    html = D.load(str(archive), None, "", 64, datasets_dir, thumbs, limit)[1]
    assert _refused(html, roots)
    html, count, stamp = D.run_check(str(outside), "zkperson", 64, limit)
    assert _refused(html, roots) and count == 0 and stamp is None
    assert D.select_image(["img_000.jpg"], str(outside), 0, limit) == ("", "")   # no caption text read
    assert D.save_caption(str(outside), "img_000.jpg", "pwned", thumbs, limit)[1:] == ([], [])
    message, gallery, rels = D.bulk_trigger(str(outside), "pwned", "", thumbs, limit)
    assert _refused(message, roots) and gallery == [] and rels == []
    assert _refused(D.bulk_find_replace(str(outside), "photo", "pwned", thumbs, limit)[0], roots)
    called = []
    html = D.run_auto_caption(str(outside), "x", True, "", {"x": lambda im: called.append(im) or "c"}, thumbs, limit)[0]
    assert _refused(html, roots) and called == []
    html, stamp = D.run_prepare(str(outside), "zkperson", "", 64, "center", 1, host.data_dir() / "prepared", limit)
    assert _refused(html, roots) and stamp is None and not (host.data_dir() / "prepared").exists()
    # a symlink inside a root that leads out is outside too
    (roots[0] / "door").symlink_to(outside)
    assert _refused(D.run_check(str(roots[0] / "door"), "", 64, limit)[0], roots)
    assert _refused(D.bulk_trigger(str(roots[0] / "door"), "pwned", "", thumbs, limit)[0], roots)

    assert tree_digest(outside.parent) == before   # not one caption changed
    assert sorted(datasets_dir.iterdir()) == sorted([*listed_before, roots[0] / "door"])   # no zip copy made
    assert not thumbs.exists() or not any(thumbs.iterdir())   # no thumbnail of a private picture


def test_folders_inside_the_roots_work_as_before(world):
    host, roots, outside, inside, _ = world
    limit = folder_limit(host)
    datasets_dir, thumbs = host.data_dir() / "datasets", host.data_dir() / "thumbnails"
    folder, html, gallery, rels, count, _, _ = D.load("mine", None, "zkperson", 64, datasets_dir, thumbs, limit)
    assert folder == str(inside.resolve()) and count == 3 and len(gallery) == 3
    assert D.select_image(rels, folder, 0, limit) == ("img_000.jpg", "zkperson, a photo number 0")
    assert "Saved" in D.save_caption(folder, "img_000.jpg", "zkperson, new", thumbs, limit)[0]
    assert (inside / "img_000.txt").read_text(encoding="utf-8").startswith("zkperson, new")
    assert "Checked" in D.run_check(str(inside), "zkperson", 64, limit)[0]
    html, stamp = D.run_prepare(str(inside), "zkperson", "", 64, "center", 1, host.data_dir() / "prepared", limit)
    assert "Prepared <b>3</b>" in html and stamp is not None
    # without a limit (a local web UI) any folder still opens
    assert D.load(str(outside), None, "", 64, datasets_dir, thumbs)[4] == 3


# ---- the built tab: the functions gradio calls for the buttons -------------------------------------

def _ids(cfg):
    return {c["props"].get("elem_id"): c["id"] for c in cfg["components"] if c["props"].get("elem_id")}


def _event(blocks, cfg, elem_id, trigger):
    """The function wired to `trigger` on the component `elem_id` (gradio 3: targets [id] + trigger;
    gradio 4: targets [[id, trigger]])."""
    target = _ids(cfg)[elem_id]
    for i, dep in enumerate(cfg["dependencies"]):
        targets = [tuple(t) if isinstance(t, (list, tuple)) else (t, dep.get("trigger")) for t in dep["targets"]]
        if (target, trigger) in targets:
            fns = blocks.fns
            return (fns[i] if isinstance(fns, list) else fns[dep.get("id", i)]).fn
    raise AssertionError(f"no {trigger} event on {elem_id}")


@pytest.fixture
def exposed_tab(world):
    from lib_lora_trainer.ui.tab import build_tab

    host = world[0]
    try:
        blocks = build_tab(host)
        yield world, blocks, blocks.get_config_file()
    finally:
        host.job_service().stop_background()


def test_the_tab_buttons_are_confined(exposed_tab):
    (host, roots, outside, inside, _), blocks, cfg = exposed_tab
    before = tree_digest(outside.parent)
    load = _event(blocks, cfg, "lora_trainer_load", "click")
    out = load(str(outside), "zkperson", 64)
    assert _refused(out[1], roots) and out[2] == [] and out[4] == 0
    check = _event(blocks, cfg, "lora_trainer_check", "click")
    assert _refused(check(str(outside), "zkperson", 64)[0], roots)
    save = _event(blocks, cfg, "lora_trainer_caption_save", "click")
    assert _refused(save(str(outside), "img_000.jpg", "pwned")[0], roots)
    bulk = _event(blocks, cfg, "lora_trainer_bulk_trigger", "click")
    assert _refused(bulk(str(outside), "pwned", "")[0], roots)
    replace = _event(blocks, cfg, "lora_trainer_bulk_replace", "click")
    assert _refused(replace(str(outside), "photo", "pwned")[0], roots)
    prepare = _event(blocks, cfg, "lora_trainer_prepare", "click")
    assert _refused(prepare(str(outside), "zkperson", "", 64, "center", 1)[0], roots)
    assert tree_digest(outside.parent) == before
    # inside the roots the same buttons work
    out = load(str(inside), "zkperson", 64)
    assert out[0] == str(inside.resolve()) and out[4] == 3
    assert "Saved" in save(out[0], "img_001.jpg", "zkperson, edited")[0]


def test_a_local_standalone_tab_is_not_confined(tmp_path):
    from lib_lora_trainer.ui.tab import build_tab

    host = StandaloneHost(lora_dir=tmp_path / "Lora", data_dir=tmp_path / "data")
    outside = write_dataset(tmp_path / "elsewhere", n=2, size=(96, 96))
    try:
        blocks = build_tab(host)
        out = _event(blocks, blocks.get_config_file(), "lora_trainer_load", "click")(str(outside), "", 64)
        assert out[0] == str(outside) and out[4] == 2
    finally:
        host.job_service().stop_background()


def test_serve_confines_a_non_loopback_bind(monkeypatch, tmp_path):
    """`python -m lib_lora_trainer ui --host 0.0.0.0 --auth ...` builds an exposed host."""
    from lib_lora_trainer.ui import standalone_app

    made = {}

    def fake_create_app(host, auth):
        made["limit"] = folder_limit(host)
        raise SystemExit(0)
    monkeypatch.setattr(standalone_app, "create_app", fake_create_app)
    for bind, confined in (("0.0.0.0", True), ("127.0.0.1", False), ("localhost", False)):
        with pytest.raises(SystemExit):
            standalone_app.serve(bind, 7999, None, None, tmp_path / f"d{len(made)}", [("u", "p")])
        assert (made["limit"] is not None) == confined, bind
        if confined:
            assert "0.0.0.0" in made["limit"].reason and Path(made["limit"].roots[0]).name == "datasets"

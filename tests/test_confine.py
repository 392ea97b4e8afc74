"""Path confinement (lib_lora_trainer/confine.py), shared by the API (api/paths.py: 400/403) and the
tab's folder fields on an exposed server (confine.FolderLimit: a message naming the roots)."""

from __future__ import annotations

import os

import pytest

from lib_lora_trainer import confine
from lib_lora_trainer.api.errors import ApiError
from lib_lora_trainer.api.paths import resolve_inside as api_resolve_inside
from lib_lora_trainer.confine import FolderLimit, PathRefused, resolve_inside


@pytest.fixture
def world(tmp_path):
    root, other = tmp_path / "datasets", tmp_path / "private"
    (root / "me").mkdir(parents=True)
    (other / "secret").mkdir(parents=True)
    (root / "link_out").symlink_to(other / "secret")
    (root / "ok.zip").write_bytes(b"PK")
    return root, other


def test_inside_paths_resolve_to_their_real_path(world):
    root, _ = world
    assert resolve_inside(str(root / "me"), [root], "dataset") == root.resolve() / "me"
    assert resolve_inside("me", [root], "dataset") == root.resolve() / "me"          # relative to the first root
    assert resolve_inside(str(root), [root], "dataset") == root.resolve()            # the root itself
    assert resolve_inside(str(root / "me" / ".." / "ok.zip"), [root], "dataset") == root.resolve() / "ok.zip"


@pytest.mark.parametrize("make", [
    lambda root, other: str(other / "secret"),                       # plainly outside
    lambda root, other: str(root / ".." / "private" / "secret"),      # '..' out of the root
    lambda root, other: str(root / "link_out"),                       # a symlink inside pointing out
    lambda root, other: "../private/secret",                          # relative, climbing out
    lambda root, other: str(root) + "-sibling",                       # a name sharing the root's prefix
    lambda root, other: "/",
])
def test_outside_paths_are_403(world, make):
    root, other = world
    with pytest.raises(PathRefused) as info:
        resolve_inside(make(root, other), [root], "dataset")
    assert info.value.status == 403 and str(root.resolve()) in info.value.fix


@pytest.mark.parametrize("value, why", [(None, "string"), (7, "string"), ("", "empty"), ("  ", "empty"),
                                        ("a\x00b", "NUL"), ("x" * 5000, "limit")])
def test_malformed_paths_are_400(world, value, why):
    root, _ = world
    with pytest.raises(PathRefused) as info:
        resolve_inside(value, [root], "dataset")
    assert info.value.status == 400 and why in info.value.message and info.value.field == "dataset"


def test_home_is_expanded_only_when_asked(world, monkeypatch):
    root, _ = world
    monkeypatch.setenv("HOME", str(root))
    assert resolve_inside("~/me", [root], "f", expand_user=True) == root.resolve() / "me"
    # the API takes "~" literally: a relative name under the first root
    assert resolve_inside("~/me", [root], "f") == root.resolve() / "~" / "me"


def test_the_api_wrapper_keeps_status_field_and_fix(world):
    root, other = world
    with pytest.raises(ApiError) as info:
        api_resolve_inside(str(other), [root], "dataset")
    assert info.value.status == 403 and info.value.field == "dataset" and str(root.resolve()) in info.value.fix
    with pytest.raises(ApiError) as info:
        api_resolve_inside("", [root], "path")
    assert info.value.status == 400 and info.value.field == "path"
    assert api_resolve_inside("me", [root], "dataset") == root.resolve() / "me"


def test_folder_limit_names_the_roots_the_reason_and_the_way_out(world, tmp_path):
    root, other = world
    extra = tmp_path / "more"
    extra.mkdir()
    limit = FolderLimit((root, extra), reason="A1111 is reachable from other machines (--listen)",
                        lift="start A1111 with --enable-insecure-extension-access to allow any folder")
    assert limit.resolve(f"  {root / 'me'}  ") == root.resolve() / "me"
    assert limit.resolve(str(extra)) == extra.resolve()
    with pytest.raises(ValueError) as info:
        limit.resolve(str(other / "secret"))
    text = str(info.value)
    assert text.startswith(f"Dataset folder: {other / 'secret'} is outside the dataset folders.")
    assert str(root.resolve()) in text and str(extra.resolve()) in text
    assert "--listen" in text and "--enable-insecure-extension-access" in text and "upload" in text
    with pytest.raises(ValueError, match="NUL"):
        limit.resolve("a\x00b")
    with pytest.raises(ValueError, match="outside"):
        limit.resolve(str(root / "link_out"))


def test_inside_is_component_wise(tmp_path):
    a = confine.real_path(tmp_path / "a")
    assert confine.inside(a / "b", [a]) and confine.inside(a, [a])
    assert not confine.inside(confine.real_path(tmp_path / "ab"), [a])
    assert os.fspath(confine.roots_text([])) == "(none configured)"

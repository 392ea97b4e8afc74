"""The HTTP API (lib_lora_trainer.api) over a real JobService in a temp data dir: auth on every
route, path confinement, hostile uploads, body validation, concurrency, events, and one real
training job on the tiny model from POST /jobs to GET /loras."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import os
import re
import stat
import threading
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from imagegen import textured, write_dataset
from lib_lora_trainer.api import create_app, mount, parse_credentials
from lib_lora_trainer.api.auth import BasicAuth
from lib_lora_trainer.api.events import LogFollower, job_events
from lib_lora_trainer.jobs import states as S
from lib_lora_trainer.jobs.service import JobService

PREFIX = "/lora-trainer/v1"
AUTH = ("alice", "s3cret:пароль")  # a ':' and non-ASCII in the password
_PARAM = re.compile(r"\{[^}]+\}")


# ---- set-up ------------------------------------------------------------------------------------------

@dataclass
class Env:
    tmp: Path
    root: Path
    uploads: Path
    service: JobService
    app: FastAPI
    client: TestClient

    def url(self, path: str) -> str:
        return PREFIX + path


def make_env(tmp: Path, auth=AUTH, **options) -> Env:
    root = tmp / "datasets"
    root.mkdir(parents=True, exist_ok=True)
    uploads = tmp / "uploads"
    # an install request (POST /engines/kohya/install, also from the fuzzer) clones from here: fails at once
    service = JobService(tmp / "data", tmp / "Lora", {"sd_scripts_url": str(tmp / "no-sd-scripts-here")})
    options.setdefault("poll_s", 0.05)
    app = create_app(service, dataset_roots=[root], upload_dir=uploads, auth=auth, **options)
    client = TestClient(app)
    client.auth = auth
    return Env(tmp, root, uploads, service, app, client)


@pytest.fixture
def env(tmp_path) -> Env:
    return make_env(tmp_path)


def api_routes(app) -> list[tuple[str, str]]:
    return sorted((m, r.path) for r in app.routes for m in (getattr(r, "methods", None) or ()))


def concrete(path: str) -> str:
    return _PARAM.sub("x", path)


# The route table, from an app built on a stand-in service (building touches no service).
_TABLE_APP = create_app(object(), dataset_roots=[], upload_dir="/nonexistent-upload-dir", auth=AUTH)
ALL_ROUTES = api_routes(_TABLE_APP)
_ROUTER_APP = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
mount(_ROUTER_APP, object(), dataset_roots=[], upload_dir="/nonexistent-upload-dir", auth=AUTH)
ROUTER_ROUTES = api_routes(_ROUTER_APP)


def zip_of(entries) -> bytes:
    """entries: (name or ZipInfo, bytes)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries:
            zf.writestr(name, data)
    return buf.getvalue()


def jpeg(seed: int, size=(96, 96)) -> bytes:
    buf = io.BytesIO()
    textured(seed, size).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def dataset_zip(n: int = 4) -> bytes:
    entries = []
    for i in range(n):
        entries += [(f"img_{i}.jpg", jpeg(i)), (f"img_{i}.txt", f"zkperson, photo {i}".encode())]
    return zip_of(entries)


def symlink_info(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info


def tree(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")) if folder.exists() else []


def job_body(model: Path, name: str, dataset: str = "photos", **config) -> dict:
    values = {"name": name, "trigger": "zkperson", "base_model": str(model), "max_train_steps": 3}
    values.update(config)
    return {"dataset": dataset, "preset": "cpu-tiny", "config": values}


def parse_sse(text: str) -> list[tuple[str, object]]:
    events = []
    for block in text.split("\n\n"):
        name, data = None, None
        for line in block.splitlines():
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                data = json.loads(line[6:])
        if name:
            events.append((name, data))
    return events


def assert_error_shape(r, status: int, field=...):
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error", "field", "fix"} and body["error"] and body["fix"], body
    if field is not ...:
        assert body["field"] == field, body
    return body


# ---- OpenAPI and auth -----------------------------------------------------------------------------------

def test_openapi_builds_with_a_summary_for_every_route(env):
    spec = env.app.openapi()
    ops = [(m, p, op) for p, item in spec["paths"].items() for m, op in item.items()]
    assert len(ops) == 17  # 10 job/LoRA/preset/check routes + 3 test-report routes + install-recommended + reproduce + 2 engines
    for method, path, op in ops:
        assert op.get("summary"), (method, path)
        assert "401" in op["responses"], (method, path)
    jobs_post = spec["paths"][f"{PREFIX}/jobs"]["post"]
    assert set(jobs_post["requestBody"]["content"]) == {"application/json", "multipart/form-data"}
    assert jobs_post["requestBody"]["content"]["application/json"]["example"]["preset"] == "sd15-portrait"
    assert "example" in jobs_post["responses"]["201"]["content"]["application/json"]
    json.dumps(spec)


@pytest.mark.parametrize("method,path", ALL_ROUTES)
def test_every_route_requires_auth(env, method, path):
    url = concrete(path)
    assert (method, path) in api_routes(env.app)
    for headers in ({}, {"Authorization": "Basic " + base64.b64encode(b"alice:wrong").decode()},
                    {"Authorization": "Basic " + base64.b64encode(b"alice").decode()},
                    {"Authorization": "Basic !!!not-base64"}, {"Authorization": "Bearer s3cret"}):
        r = env.client.request(method, url, headers=headers, auth=None)
        assert r.status_code == 401, (method, url, headers, r.status_code)
        assert r.headers["www-authenticate"].startswith("Basic realm=")
        if method != "HEAD":
            assert_error_shape(r, 401)
    if "events" not in path:  # an unknown job id: 404, not a stream
        r = env.client.request(method, url)
        assert r.status_code != 401, (method, url)


@pytest.mark.parametrize("method,path", ROUTER_ROUTES)
def test_mounted_router_guards_its_routes_itself(tmp_path, method, path):
    """In A1111 there is no middleware of ours: the router alone must refuse."""
    app = FastAPI()
    mount(app, JobService(tmp_path / "data", tmp_path / "Lora"), dataset_roots=[tmp_path], upload_dir=tmp_path / "up",
          auth="alice:s3cret,bob:pw2")
    client = TestClient(app)
    r = client.request(method, concrete(path))
    assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Basic")
    r = client.request(method, concrete(path), auth=("bob", "pw2"))
    assert r.status_code != 401


def test_credentials_parsing_and_checks():
    assert parse_credentials("u:p, v:q:r") == [("u", "p"), ("v", "q:r")]
    assert parse_credentials(None) == [] and parse_credentials("") == []
    with pytest.raises(ValueError):
        parse_credentials("nocolon")
    guard = BasicAuth(("u", "pä"))
    good = "Basic " + base64.b64encode("u:pä".encode()).decode()
    assert guard.accepts(good) and guard.accepts(good.encode("latin-1"))
    for bad in (None, "", "Basic", "Basic " + "A" * 10000, "basic " + base64.b64encode(b"u:p").decode(),
                "Basic " + base64.b64encode(b"u:p\xc3\xa4x").decode(), "Digest abc"):
        assert not guard.accepts(bad), bad
    assert BasicAuth(None).accepts(None) and not BasicAuth(None).enabled


def test_without_auth_the_api_is_open(tmp_path):
    e = make_env(tmp_path, auth=None)
    assert e.client.get(e.url("/jobs"), auth=None).status_code == 200


def test_cross_site_posts_are_refused(env):
    r = env.client.post(env.url("/datasets/check"), json={"path": "x"}, headers={"Origin": "https://evil.example"})
    assert_error_shape(r, 403)
    assert "cross-site" in r.json()["error"]
    r = env.client.post(env.url("/datasets/check"), json={"path": "nothing-here"},
                        headers={"Origin": "http://testserver"})
    assert r.status_code == 400  # same origin: goes through to the (missing) folder
    r = env.client.post(env.url("/datasets/check"), json={"path": "nothing-here"},
                        headers={"Origin": "https://abc.gradio.live", "X-Forwarded-Host": "abc.gradio.live"})
    assert r.status_code == 400  # behind a proxy that says which host the browser asked for
    trusted = make_env(env.tmp / "t", trusted_origins=["https://ui.example"])
    r = trusted.client.post(trusted.url("/datasets/check"), json={"path": "nothing-here"},
                            headers={"Origin": "https://ui.example"})
    assert r.status_code == 400


# ---- path confinement ----------------------------------------------------------------------------------------

def _outside_paths(env: Env) -> dict[str, str]:
    outside = env.tmp / "outside"
    write_dataset(outside, n=2, size=(96, 96))
    (env.root / "escape").symlink_to(outside, target_is_directory=True)
    (env.root / "sub").mkdir()
    (env.root / "sub" / "up").symlink_to(env.root.parent, target_is_directory=True)
    return {
        "absolute": str(outside),
        "etc": "/etc",
        "dotdot": f"{env.root}/../outside",
        "dotdot_deep": f"{env.root}/sub/../../outside",
        "relative_dotdot": "../outside",
        "symlink_escape": str(env.root / "escape"),
        "symlink_in_relative": "escape/img_000.jpg",
        "symlink_chain": f"{env.root}/sub/up/outside",
        "prefix_sibling": str(env.root) + "-evil",
    }


@pytest.mark.parametrize("route,key", [("/jobs", "dataset"), ("/datasets/check", "path")])
def test_paths_outside_the_dataset_roots_are_403(env, tiny_model, route, key):
    Path(str(env.root) + "-evil").mkdir()
    for label, path in _outside_paths(env).items():
        body = job_body(tiny_model, "x", dataset=path) if route == "/jobs" else {"path": path}
        r = env.client.post(env.url(route), json=body)
        err = assert_error_shape(r, 403, key)
        assert "outside the allowed dataset folders" in err["error"], label
        assert str(env.root.resolve()) in err["fix"]
    assert env.service.list() == []


@pytest.mark.parametrize("route,key", [("/jobs", "dataset"), ("/datasets/check", "path")])
@pytest.mark.parametrize("value", ["", "   ", "photos\x00/../../etc", "\x00", "a" * 4097, 123, ["photos"],
                                   {"p": 1}, None, True])
def test_malformed_paths_are_400(env, route, key, value):
    body = {key: value, "config": {}} if route == "/jobs" else {key: value}
    assert_error_shape(env.client.post(env.url(route), json=body), 400, key)


def test_links_and_dotdot_inside_the_roots_are_followed(env):
    write_dataset(env.root / "real", n=3, size=(96, 96))
    (env.root / "alias").symlink_to(env.root / "real", target_is_directory=True)
    for path in ("alias", f"{env.root}/real/../alias", "./real"):
        r = env.client.post(env.url("/datasets/check"), json={"path": path, "resolution": 64})
        assert r.status_code == 200, r.text
        assert r.json()["images"] == 3 and r.json()["source"] == str((env.root / "real").resolve())


def test_base_model_confinement_when_model_roots_are_given(tmp_path, tiny_model):
    e = make_env(tmp_path, model_roots=[tmp_path / "models"])
    write_dataset(e.root / "photos", n=2, size=(96, 96))
    err = assert_error_shape(e.client.post(e.url("/jobs"), json=job_body(tiny_model, "m")), 403, "base_model")
    assert "outside the allowed model folders" in err["error"]


# ---- dataset check ---------------------------------------------------------------------------------------------

def test_check_reports_a_non_utf8_caption_instead_of_failing(env):
    folder = write_dataset(env.root / "mixed", n=3, size=(96, 96))
    (folder / "img_001.txt").write_bytes("zkperson, caf\xe9 au lait".encode("cp1252"))
    r = env.client.post(env.url("/datasets/check"), json={"path": "mixed", "trigger": "zkperson", "resolution": 64})
    assert r.status_code == 200, r.text
    report = r.json()
    assert any(p["code"] == "caption_not_utf8" and p["path"] == "img_001.txt" for p in report["problems"])
    assert report["summary"]["by_code"]["caption_not_utf8"] == 1


def test_check_an_uploaded_zip_and_a_zip_inside_the_roots(env):
    r = env.client.post(env.url("/datasets/check"), files={"file": ("me.zip", dataset_zip(3), "application/zip")},
                        data={"trigger": "zkperson", "resolution": "64"})
    assert r.status_code == 200, r.text
    assert r.json()["images"] == 3 and r.json()["source"] == "me.zip"
    assert tree(env.uploads) == []  # the extracted copy is gone
    (env.root / "set.zip").write_bytes(dataset_zip(2))
    r = env.client.post(env.url("/datasets/check"), json={"path": "set.zip"})
    assert r.status_code == 200 and r.json()["images"] == 2


@pytest.mark.parametrize("body,field", [
    ({"path": "p", "resolution": 63}, "resolution"), ({"path": "p", "resolution": "512"}, "resolution"),
    ({"path": "p", "resolution": 1e300}, "resolution"), ({"path": "p", "resolution": True}, "resolution"),
    ({"path": "p", "trigger": "a/b"}, "trigger"), ({"path": "p", "trigger": "x" * 1_000_000}, "trigger"),
    ({"path": "p", "trigger": 5}, "trigger"), ({"path": "p", "extra": 1}, "extra"),
    ({"path": "nothing-here"}, "path"), ({"path": "photos/img_000.jpg"}, "path"),
    ({"path": "y" * 1000}, "path"), ({"path": "p", "\ud800": 1}, "\ud800"),
])
def test_check_rejects_bad_input_with_400(env, body, field):
    write_dataset(env.root / "photos", n=1, size=(96, 96))
    assert_error_shape(env.client.post(env.url("/datasets/check"), json=body), 400, field)


# ---- uploads ----------------------------------------------------------------------------------------------

HOSTILE_ZIPS = {
    "zip_slip": lambda: zip_of([("img_0.jpg", jpeg(0)), ("../../evil.txt", b"pwned")]),
    "absolute": lambda: zip_of([("/tmp/evil_abs.txt", b"pwned")]),
    "backslash_slip": lambda: zip_of([("..\\..\\evil.txt", b"pwned")]),
    "symlink": lambda: zip_of([("img_0.jpg", jpeg(0)), (symlink_info("link.jpg"), b"/etc/passwd")]),
    "bomb": lambda: zip_of([("img_0.jpg", jpeg(0)), ("big.txt", b"\0" * (20 * 1024 * 1024))]),
    "not_a_zip": lambda: b"this is not a zip at all" * 10,
    "empty": lambda: b"",
    "long_name": lambda: zip_of([("img_0.jpg", jpeg(0)), ("n" * 300 + ".jpg", jpeg(1))]),
}


@pytest.mark.parametrize("route", ["/datasets/check", "/jobs"])
@pytest.mark.parametrize("kind", sorted(HOSTILE_ZIPS))
def test_hostile_zip_uploads_are_400_and_write_nothing_outside(env, tiny_model, route, kind):
    before = tree(env.tmp)
    data = {"config": json.dumps({"name": "up", "base_model": str(tiny_model), "trigger": "zkperson"}),
            "preset": "cpu-tiny"} if route == "/jobs" else {}
    r = env.client.post(env.url(route), files={"file": ("evil.zip", HOSTILE_ZIPS[kind](), "application/zip")},
                        data=data)
    err = assert_error_shape(r, 400, "file")
    if kind == "bomb":
        assert "zip bomb" in err["error"]
    if kind == "symlink":
        assert "symbolic link" in err["error"]
    after = [p for p in tree(env.tmp) if not p.startswith(("data", "uploads"))]
    assert after == [p for p in before if not p.startswith(("data", "uploads"))]
    assert tree(env.uploads) == []
    assert not Path("/tmp/evil_abs.txt").exists() and not (env.tmp.parent / "evil.txt").exists()
    assert env.service.list() == []


def test_oversized_uploads_are_413(tmp_path):
    e = make_env(tmp_path, max_upload_bytes=10_000)
    big = b"\0" * 20_000
    for route in ("/datasets/check", "/jobs"):
        r = e.client.post(e.url(route), files={"file": ("big.zip", big, "application/zip")}, data={"config": "{}"})
        assert_error_shape(r, 413, "file")

    def chunks():  # no Content-Length: cut off while it streams
        yield b"--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.zip\"\r\n\r\n"
        for _ in range(50):
            yield b"\0" * 1000

    r = e.client.post(e.url("/datasets/check"), content=chunks(),
                      headers={"Content-Type": "multipart/form-data; boundary=b"})
    assert_error_shape(r, 413, "file")
    assert tree(e.uploads) == []


def test_a_small_upload_under_the_cap_still_works(tmp_path):
    e = make_env(tmp_path, max_upload_bytes=200_000)
    r = e.client.post(e.url("/datasets/check"), files={"file": ("a.zip", dataset_zip(2), "application/zip")})
    assert r.status_code == 200, r.text


# ---- bodies ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("content,field", [
    (b"{not json", None), (b"[1, 2]", None), (b'"x"', None), (b'{"dataset": "\xff"}', None), (b"", None),
    (b'{"dataset": "photos", "config": {"name": 1' + b"0" * 5000 + b"}}", None),
    (b"[" * 100_000 + b"]" * 100_000, None),
    (b'{"dataset": "photos", "config": [1]}', "config"), (b'{"dataset": "photos", "crop": "diagonal"}', "crop"),
    (b'{"dataset": "photos", "preset": 7, "config": {}}', "preset"), (b'{"datset": "photos"}', "datset"),
    (b'{"config": {}}', "dataset"),
    (b'{"dataset": "photos", "config": {"name": "ok", "epochs": Infinity}}', None),
    (b'{"dataset": "photos", "config": {"name": "ok", "epochs": 1e999}}', None),
    (b'{"dataset": "photos", "config": {"name": "ok", "epochs": NaN}}', None),
    (b'{"dataset": "photos", "\\ud800": 1}', "\ud800"),
])
def test_bad_json_bodies_are_400(env, content, field):
    write_dataset(env.root / "photos", n=1, size=(96, 96))
    r = env.client.post(env.url("/jobs"), content=content, headers={"Content-Type": "application/json"})
    assert_error_shape(r, 400, field)


@pytest.mark.parametrize("config,field", [
    ({"name": "n" * 1_000_000}, "name"), ({"name": "ok", "trigger": "t" * 1_000_000}, "trigger"),
    ({"name": "a/../../b"}, "name"), ({"name": "a,b"}, "name"), ({"name": "ok", "learning_rate": 5}, "learning_rate"),
    ({"name": "ok", "learnig_rate": 1e-4}, "learnig_rate"), ({"name": "ok", "batch_size": "4"}, "batch_size"),
    ({"name": "ok", "optimizer_args": {"a": {"b": [1]}}}, "optimizer_args"), ({"name": "ok", "seed": -1}, "seed"),
    ({"name": "ok", "preset": "other"}, "preset"),
])
def test_bad_configs_are_400_with_the_field(env, tiny_model, config, field):
    write_dataset(env.root / "photos", n=1, size=(96, 96))
    body = {"dataset": "photos", "preset": "cpu-tiny", "config": {"base_model": str(tiny_model), **config}}
    assert_error_shape(env.client.post(env.url("/jobs"), json=body), 400, field)
    assert env.service.list() == []


def test_submit_errors_from_the_service_are_400(env, tmp_path):
    write_dataset(env.root / "photos", n=1, size=(96, 96))
    not_a_model = tmp_path / "model.safetensors"
    not_a_model.write_bytes(b"garbage")
    r = env.client.post(env.url("/jobs"), json={"dataset": "photos", "preset": "cpu-tiny",
                                                "config": {"name": "bad", "base_model": str(not_a_model)}})
    assert_error_shape(r, 400)


def test_large_bodies_and_unknown_content_types(env):
    r = env.client.post(env.url("/jobs"), content=b"{" + b" " * (5 * 1024**2) + b"}",
                        headers={"Content-Type": "application/json"})
    assert_error_shape(r, 413)
    for ctype in ("text/plain", "application/x-www-form-urlencoded"):
        assert_error_shape(env.client.post(env.url("/jobs"), content=b"a=b", headers={"Content-Type": ctype}), 415)
    r = env.client.post(env.url("/jobs"), content=b"--x--", headers={"Content-Type": "multipart/form-data"})
    assert_error_shape(r, 400)
    r = env.client.post(env.url("/jobs"), files={"file": ("a.zip", b"x")}, data={"config": "[1]"})
    assert_error_shape(r, 400, "config")
    r = env.client.post(env.url("/jobs"), data={"config": "{}"}, files={"other": ("a.zip", b"x")})
    assert_error_shape(r, 400, "file")


# ---- jobs ----------------------------------------------------------------------------------------------------

def test_unknown_jobs_are_404(env):
    for method, path in [("GET", "/jobs/nope"), ("POST", "/jobs/nope/cancel"), ("POST", "/jobs/nope/resume"),
                         ("GET", "/jobs/nope/events"), ("GET", "/jobs/nope/samples/a.png"),
                         ("GET", "/jobs/%00/events"), ("GET", "/jobs/" + "9" * 500), ("GET", "/jobs/..%2F..")]:
        r = env.client.request(method, env.url(path))
        assert r.status_code == 404, (method, path, r.text)


def test_concurrent_submits_get_distinct_ids_and_a_consistent_store(env, tiny_model):
    write_dataset(env.root / "photos", n=3, size=(96, 96))
    names = [f"c{i}" for i in range(6)] + ["bad/name", "x" * 200]
    results: dict[str, object] = {}

    def post(name):
        client = TestClient(env.app)
        client.auth = AUTH
        results[name] = client.post(env.url("/jobs"), json=job_body(tiny_model, name))

    threads = [threading.Thread(target=post, args=(n,)) for n in names]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    codes = {n: r.status_code for n, r in results.items()}
    assert all(codes[f"c{i}"] == 201 for i in range(6)), codes
    assert codes["bad/name"] == 400 and codes["x" * 200] == 400
    ids = [results[f"c{i}"].json()["id"] for i in range(6)]
    assert len(set(ids)) == 6
    listed = env.client.get(env.url("/jobs")).json()["jobs"]
    assert sorted(j["id"] for j in listed) == sorted(ids)
    assert all(j["state"] == S.QUEUED and j["progress"]["total"] for j in listed)
    for job_id in ids:
        assert (Path(env.service.get(job_id).job_dir) / "plan.json").is_file()


def test_cancel_resume_conflicts_detail_samples_and_events_of_a_finished_job(env, tiny_model):
    write_dataset(env.root / "photos", n=3, size=(96, 96))
    job = env.client.post(env.url("/jobs"), json=job_body(tiny_model, "ev")).json()
    assert job["state"] == S.QUEUED
    assert env.client.post(env.url(f"/jobs/{job['id']}/cancel")).json()["state"] == S.CANCELLED
    assert_error_shape(env.client.post(env.url(f"/jobs/{job['id']}/cancel")), 409)
    # What a run leaves behind: logs with tqdm redraws, a sample image.
    folder = Path(job["paths"]["job_dir"])
    (folder / "stdout.log").write_bytes(b"[lora-trainer] run start\nepoch 1/1\n")
    (folder / "stderr.log").write_bytes(b"steps:  33%|#  | 1/3 [00:01<00:02]\rsteps:  67%|## | 2/3\r\nlast line\n")
    (folder / "output" / "sample").mkdir(parents=True)
    (folder / "output" / "sample" / "ev_000001_00.png").write_bytes(jpeg(1))
    (folder / "output" / "sample" / "notes.txt").write_text("not an image")
    detail = env.client.get(env.url(f"/jobs/{job['id']}")).json()
    assert detail["config"]["name"] == "ev" and detail["loss_history"] == []
    assert [s["name"] for s in detail["samples"]] == ["ev_000001_00.png"]
    img = env.client.get(detail["samples"][0]["url"])
    assert img.status_code == 200 and img.content == jpeg(1)
    for bad in ("notes.txt", "..%2F..%2Fplan.json", "%2Fetc%2Fpasswd", ".hidden.png", "missing.png"):
        assert env.client.get(env.url(f"/jobs/{job['id']}/samples/{bad}")).status_code == 404, bad

    r = env.client.get(env.url(f"/jobs/{job['id']}/events"))
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    events = parse_sse(r.text)
    kinds = [k for k, _ in events]
    assert kinds[-1] == "end" and kinds.count("end") == 1 and "progress" in kinds
    assert events[-1][1]["state"] == S.CANCELLED
    logs = [line for k, d in events if k == "log" for line in d["lines"]]
    assert logs == ["[lora-trainer] run start", "epoch 1/1", "steps:  33%|#  | 1/3 [00:01<00:02]",
                    "steps:  67%|## | 2/3", "last line"]
    samples = [d for k, d in events if k == "sample"]
    assert [s["name"] for s in samples] == ["ev_000001_00.png"] and samples[0]["url"].endswith(
        f"/jobs/{job['id']}/samples/ev_000001_00.png")
    progress = [d for k, d in events if k == "progress"]
    assert progress[-1]["id"] == job["id"] and progress[-1]["state"] == S.CANCELLED

    resumed = env.client.post(env.url(f"/jobs/{job['id']}/resume"))
    assert resumed.status_code == 200 and resumed.json()["state"] == S.QUEUED
    assert_error_shape(env.client.post(env.url(f"/jobs/{job['id']}/resume")), 409)


def test_event_streams_are_limited(tmp_path):
    e = make_env(tmp_path, max_streams=0)
    e.service.store.create("s", "builtin", str(tmp_path / "j"), {}, state=S.QUEUED, job_id="j1")
    assert_error_shape(e.client.get(e.url("/jobs/j1/events")), 429)


class _FakeRequest:
    def __init__(self, disconnect_after: int):
        self.calls = 0
        self.disconnect_after = disconnect_after

    async def is_disconnected(self):
        self.calls += 1
        return self.calls > self.disconnect_after


def _collect(gen, limit=100):
    async def run():
        out = []
        async for chunk in gen:
            out.append(chunk)
            if len(out) >= limit:
                break
        return out
    return asyncio.run(run())


def test_event_generator_stops_on_disconnect_and_sends_heartbeats(tmp_path):
    service = JobService(tmp_path / "data", tmp_path / "Lora")
    (tmp_path / "j").mkdir()
    job = service.store.create("s", "builtin", str(tmp_path / "j"), {}, state=S.QUEUED, job_id="j1")
    sleeps = []

    async def fake_sleep(s):
        sleeps.append(s)

    request = _FakeRequest(disconnect_after=3)
    chunks = _collect(job_events(request=request, get_job=lambda: service.get(job.id), job_payload=lambda j: j.state,
                                 sample_url=str, poll_s=0.7, heartbeat_s=0.0, sleep=fake_sleep))
    assert chunks[0].startswith(b"retry:") and chunks[1].startswith(b"event: progress")
    assert chunks.count(b": heartbeat\n\n") == 3 and request.calls == 4 and sleeps == [0.7] * 3
    # a job that disappears ends the stream with `end`
    chunks = _collect(job_events(request=_FakeRequest(99), get_job=_vanishing(service.get(job.id)),
                                 job_payload=lambda j: j.state, sample_url=str, sleep=fake_sleep))
    assert chunks[-1].startswith(b"event: end") and b"no longer exists" in chunks[-1]
    # the lifetime bound closes a stream that never ends
    chunks = _collect(job_events(request=_FakeRequest(99), get_job=lambda: service.get(job.id),
                                 job_payload=lambda j: j.state, sample_url=str, max_s=0.0, sleep=fake_sleep))
    assert len(chunks) == 2


def _vanishing(job):
    calls = []

    def get():
        calls.append(1)
        if len(calls) > 2:
            raise KeyError(job.id)
        return job
    return get


def test_log_follower_sends_only_new_complete_lines(tmp_path):
    log = tmp_path / "stderr.log"
    follower = LogFollower(log, tail_bytes=10)
    assert follower.poll() == []  # no file yet
    log.write_bytes(b"old line that is long\nrecent\n")
    assert follower.poll() == ["recent"]  # the tail, without the cut first line
    with open(log, "ab") as f:
        f.write(b"a 1/3\ra 2/3\r\nb partial")
    assert follower.poll() == ["a 1/3", "a 2/3"]
    assert follower.poll() == []
    with open(log, "ab") as f:
        f.write(" done \xe9\n".encode("utf-8") + b"\xff tail")
    assert follower.poll() == ["b partial done \xe9"]
    assert follower.poll(final=True) == ["\ufffd tail"]


# ---- LoRA listing -----------------------------------------------------------------------------------------------

def test_lora_listing_reads_only_inside_the_lora_folder_and_survives_bad_files(env, tmp_path):
    lora_dir = Path(env.service.lora_dir)
    (lora_dir / "sub").mkdir(parents=True)
    (lora_dir / "broken.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{garbage")
    secret = tmp_path / "secret.json"
    secret.write_text(json.dumps({"activation text": "TOP SECRET"}))
    (tmp_path / "elsewhere.safetensors").write_bytes(b"x")
    (lora_dir / "linked.safetensors").symlink_to(tmp_path / "elsewhere.safetensors")
    (lora_dir / "sub" / "side.safetensors").write_bytes(b"x")
    (lora_dir / "sub" / "side.json").symlink_to(secret)
    r = env.client.get(env.url("/loras"))
    assert r.status_code == 200
    entries = {e["name"]: e for e in r.json()["loras"]}
    assert set(entries) == {"broken", "linked", "side"}
    assert all("error" in e for e in entries.values())
    assert "TOP SECRET" not in r.text and "outside the Lora folder" in entries["linked"]["error"]


# ---- one real job, end to end ------------------------------------------------------------------------------------

def test_end_to_end_train_follow_and_list_the_lora(env, tiny_model):
    write_dataset(env.root / "photos", n=6, size=(96, 96))
    r = env.client.post(env.url("/jobs"), json=job_body(tiny_model, "api_e2e"))
    assert r.status_code == 201, r.text
    job_id = r.json()["id"]
    assert r.json()["progress"]["total"] == 3
    deadline = time.time() + 240
    while time.time() < deadline:
        env.service.tick()
        state = env.client.get(env.url(f"/jobs/{job_id}")).json()["state"]
        if state in S.FINISHED:
            break
        time.sleep(0.3)
    job = env.client.get(env.url(f"/jobs/{job_id}")).json()
    assert job["state"] == S.SUCCEEDED, job
    assert job["progress"]["step"] == 3 and job["paths"]["installed"].endswith("api_e2e.safetensors")
    assert job["loss_history"]
    loras = {e["name"]: e for e in env.client.get(env.url("/loras")).json()["loras"]}
    lora = loras["api_e2e"]
    assert "error" not in lora and lora["sidecar"]["activation text"] == "zkperson"
    assert lora["sd_version"] == "SD1" and lora["metadata"]["ss_output_name"] == "api_e2e"
    assert lora["prompt"] == "<lora:api_e2e:1>, zkperson"
    err = assert_error_shape(env.client.post(env.url(f"/jobs/{job_id}/resume")), 409)
    assert "succeeded" in err["error"]
    assert_error_shape(env.client.post(env.url(f"/jobs/{job_id}/cancel")), 409)
    events = parse_sse(env.client.get(env.url(f"/jobs/{job_id}/events")).text)
    kinds = [k for k, _ in events]
    assert kinds[-1] == "end" and events[-1][1]["state"] == S.SUCCEEDED and "progress" in kinds and "log" in kinds


def test_upload_submit_creates_a_job_and_cleans_the_upload(env, tiny_model):
    config = {"name": "zipped", "trigger": "zkperson", "base_model": str(tiny_model), "max_train_steps": 2}
    r = env.client.post(env.url("/jobs"), files={"file": ("set.zip", dataset_zip(4), "application/zip")},
                        data={"config": json.dumps(config), "preset": "cpu-tiny", "crop": "center"})
    assert r.status_code == 201, r.text
    job = env.service.get(r.json()["id"])
    assert job.state == S.QUEUED and job.config["name"] == "zipped"
    assert len(list((Path(job.job_dir) / "dataset" / "img").rglob("*.png"))) == 4
    assert tree(env.uploads) == []
    assert_error_shape(env.client.post(env.url("/jobs"), files={"file": ("a.zip", dataset_zip(1))},
                                       data={"config": "{}", "dataset": "photos"}), 400, "dataset")


def test_presets_and_fields(env):
    body = env.client.get(env.url("/presets")).json()
    assert "cpu-tiny" in [p["id"] for p in body["presets"]]
    fields = {f["name"]: f for f in body["fields"]}
    assert fields["name"]["required"] and fields["learning_rate"]["maximum"] == 1.0


def test_app_lifespan_runs_the_job_loop_when_asked(tmp_path):
    service = JobService(tmp_path / "data", tmp_path / "Lora")
    app = create_app(service, dataset_roots=[tmp_path], upload_dir=tmp_path / "up", background=True)
    with TestClient(app) as client:
        assert client.get(PREFIX + "/jobs").status_code == 200
        assert service._thread is not None and service._thread.is_alive()
    assert not service._thread.is_alive()


def test_upload_dir_is_created_lazily(tmp_path):
    e = make_env(tmp_path)
    assert not e.uploads.exists()
    e.client.post(e.url("/datasets/check"), files={"file": ("a.zip", dataset_zip(1))})
    assert e.uploads.is_dir() and os.listdir(e.uploads) == []


def test_a_real_server_frees_an_event_stream_when_the_client_goes_away(tmp_path):
    """uvicorn on a free port: a stream of a job that never ends is closed by the client; with
    max_streams=1 a second stream is only possible once the server noticed the disconnect."""
    import socket

    import httpx
    import uvicorn

    e = make_env(tmp_path, max_streams=1, heartbeat_s=0.2)
    (tmp_path / "j").mkdir()
    e.service.store.create("s", "builtin", str(tmp_path / "j"), {}, state=S.QUEUED, job_id="j1")
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(e.app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        base = f"http://127.0.0.1:{port}{PREFIX}"
        deadline = time.time() + 10
        while not server.started and time.time() < deadline:
            time.sleep(0.05)
        with httpx.Client(auth=AUTH, timeout=10) as client:
            with client.stream("GET", f"{base}/jobs/j1/events") as r:
                assert r.status_code == 200
                seen = ""
                for text in r.iter_text():
                    seen += text
                    if "event: progress" in seen and ": heartbeat" in seen:
                        break
            status = None
            while time.time() < deadline:
                with client.stream("GET", f"{base}/jobs/j1/events") as r2:
                    status = r2.status_code
                if status == 200:
                    break
                time.sleep(0.1)
            assert status == 200, "the first stream was never released"
    finally:
        server.should_exit = True
        thread.join(10)


def test_event_streams_pass_through_gzip_middleware_uncompressed(env, tmp_path):
    """A1111 wraps its app in GZipMiddleware, which would hold SSE events back in the compressor."""
    from starlette.middleware.gzip import GZipMiddleware

    app = FastAPI()
    app.add_middleware(GZipMiddleware, minimum_size=10)
    mount(app, env.service, dataset_roots=[env.root], upload_dir=env.uploads, poll_s=0.01)
    (tmp_path / "j").mkdir()
    (tmp_path / "j" / "stdout.log").write_text("x" * 5000 + "\n")
    env.service.store.create("s", "builtin", str(tmp_path / "j"), {}, state=S.CANCELLED, job_id="j1")
    r = TestClient(app).get(PREFIX + "/jobs/j1/events", headers={"Accept-Encoding": "gzip"})
    assert r.status_code == 200 and r.headers["content-encoding"] == "identity"
    assert [k for k, _ in parse_sse(r.text)] == ["log", "progress", "end"]
    assert TestClient(app).get(PREFIX + "/presets", headers={"Accept-Encoding": "gzip"}).headers[
        "content-encoding"] == "gzip"

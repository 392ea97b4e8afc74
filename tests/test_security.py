"""Security checks that tests/test_api.py, tests/test_api_fuzz.py and tests/test_zip_import.py do
not already make: huge images (header-only rejection), hostile zip entry names through the API
(NUL, drive letters, non-UTF-8 names), non-UTF-8 captions through POST /jobs, concurrent POST /jobs
against a real uvicorn server (real sockets, no 5xx), and a scan of the source for subprocesses
started through a shell."""

from __future__ import annotations

import ast
import http.client
import json
import socket
import struct
import threading
import time
import zlib
from pathlib import Path

import pytest

from imagegen import write_dataset
from test_api import AUTH, assert_error_shape, jpeg, job_body, make_env, tree, zip_of

ROOT = Path(__file__).resolve().parent.parent


# ---- huge images --------------------------------------------------------------------------------------

def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header declares width x height RGB pixels, with almost no data behind it."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def test_huge_image_is_reported_from_its_header_without_decoding(tmp_path):
    e = make_env(tmp_path)
    folder = write_dataset(e.root / "huge", n=2, size=(96, 96))
    (folder / "giant.png").write_bytes(png_header_only(40_000, 40_000))  # 4.8 GB if decoded
    started = time.monotonic()
    r = e.client.post(e.url("/datasets/check"), json={"path": "huge", "resolution": 64})
    assert r.status_code == 200, r.text
    assert time.monotonic() - started < 20
    bombs = [p for p in r.json()["problems"] if p["code"] == "decompression_bomb"]
    assert [p["path"] for p in bombs] == ["giant.png"] and bombs[0]["severity"] == "error"


def test_huge_image_in_an_uploaded_zip_is_reported_not_a_crash(tmp_path):
    e = make_env(tmp_path)
    body = zip_of([("img_0.jpg", jpeg(0)), ("giant.png", png_header_only(65_000, 65_000))])
    r = e.client.post(e.url("/datasets/check"), files={"file": ("g.zip", body, "application/zip")})
    assert r.status_code == 200, r.text
    assert any(p["code"] == "decompression_bomb" for p in r.json()["problems"])
    assert tree(e.uploads) == []


# ---- hostile names through the API -----------------------------------------------------------------------

def raw_zip(name: bytes, data: bytes = b"x", utf8_flag: bool = False) -> bytes:
    """A one-entry stored zip with exactly these name bytes (zipfile would clean some of them)."""
    flags = 0x800 if utf8_flag else 0
    crc = zlib.crc32(data) & 0xFFFFFFFF
    local = struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, flags, 0, 0, 0, crc, len(data), len(data), len(name), 0)
    central = struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, flags, 0, 0, 0, crc, len(data), len(data),
                          len(name), 0, 0, 0, 0, 0o644 << 16, 0)
    body = local + name + data
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 1, 1, len(central) + len(name), len(body), 0)
    return body + central + name + end


@pytest.mark.parametrize("name", [b"img\x00.jpg", b"C:\\evil.jpg", b"c:evil.jpg", b"/abs/evil.jpg",
                                  b"a/../../evil.jpg", b"\\\\server\\share\\evil.jpg"])
def test_hostile_entry_names_are_400_naming_the_problem(tmp_path, name):
    e = make_env(tmp_path)
    r = e.client.post(e.url("/datasets/check"), files={"file": ("n.zip", raw_zip(name), "application/zip")})
    assert_error_shape(r, 400, "file")
    assert tree(e.uploads) == []
    assert not list(tmp_path.parent.glob("evil.jpg")) and not Path("/abs/evil.jpg").exists()


@pytest.mark.parametrize("utf8_flag", [False, True])
def test_non_utf8_entry_names_never_give_a_5xx(tmp_path, utf8_flag):
    e = make_env(tmp_path)
    body = raw_zip("caf\xe9.jpg".encode("cp1252"), jpeg(0), utf8_flag=utf8_flag)
    r = e.client.post(e.url("/datasets/check"), files={"file": ("n.zip", body, "application/zip")})
    assert r.status_code in (200, 400), r.text
    assert tree(e.uploads) == []


def test_non_utf8_caption_through_post_jobs_is_a_400_naming_the_file(tmp_path, tiny_model):
    e = make_env(tmp_path)
    folder = write_dataset(e.root / "photos", n=3, size=(96, 96))
    (folder / "img_001.txt").write_bytes("zkperson, caf\xe9".encode("cp1252"))
    r = e.client.post(e.url("/jobs"), json=job_body(tiny_model, "enc"))
    print("POST /jobs with a cp1252 caption ->", r.status_code, r.text[:300])
    if r.status_code == 201:  # accepted: then the prepared caption must be valid UTF-8 (kohya stops otherwise)
        job_dir = Path(e.service.get(r.json()["id"]).job_dir)
        for caption in (job_dir / "dataset").rglob("*.txt"):
            caption.read_bytes().decode("utf-8")
    else:
        err = assert_error_shape(r, 400)
        assert "img_001.txt" in err["error"] + err["fix"] and "UTF-8" in err["error"] + err["fix"]


def test_oversized_multipart_fields_are_refused(tmp_path):
    e = make_env(tmp_path)
    for field, value in (("config", "{" + " " * 3_000_000 + "}"), ("trigger", "t" * 3_000_000),
                         ("preset", "p" * 100_000)):
        r = e.client.post(e.url("/jobs"), files={"file": ("a.zip", b"PK", "application/zip")}, data={field: value})
        assert r.status_code in (400, 413), (field, r.status_code, r.text[:200])


# ---- concurrency on a real server --------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_concurrent_post_jobs_on_a_real_uvicorn_server(tmp_path, tiny_model):
    import uvicorn

    e = make_env(tmp_path)
    write_dataset(e.root / "photos", n=3, size=(96, 96))
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(e.app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 30
    while not server.started and time.time() < deadline:
        time.sleep(0.05)
    assert server.started
    import base64
    auth = "Basic " + base64.b64encode(f"{AUTH[0]}:{AUTH[1]}".encode()).decode()
    names = [f"p{i}" for i in range(8)] + ["../escape", "same", "same"]
    results: list[tuple[str, int, dict]] = []
    lock = threading.Lock()

    def post(name: str) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
        body = json.dumps(job_body(tiny_model, name))
        conn.request("POST", e.url("/jobs"), body=body, headers={"Content-Type": "application/json",
                                                                  "Authorization": auth})
        resp = conn.getresponse()
        payload = json.loads(resp.read() or b"{}")
        with lock:
            results.append((name, resp.status, payload))
        conn.close()

    try:
        threads = [threading.Thread(target=post, args=(n,)) for n in names]
        for t in threads:
            t.start()
        for t in threads:
            t.join(300)
    finally:
        server.should_exit = True
        thread.join(30)
    assert len(results) == len(names)
    assert all(status < 500 for _, status, _ in results), results
    created = [p["id"] for n, s, p in results if s == 201]
    assert sorted(n for n, s, _ in results if s == 201) == sorted([f"p{i}" for i in range(8)] + ["same", "same"])
    assert [s for n, s, _ in results if n == "../escape"] == [400]
    assert len(set(created)) == len(created) == 10
    assert sorted(j.id for j in e.service.list()) == sorted(created)


# ---- no shell anywhere -------------------------------------------------------------------------------------

SHELL_FUNCS = {("os", "system"), ("os", "popen"), ("subprocess", "getoutput"), ("subprocess", "getstatusoutput"),
               ("asyncio", "create_subprocess_shell"), ("os", "execl"), ("os", "execlp"), ("os", "spawnl"),
               ("os", "spawnlp"), ("os", "spawnv"), ("os", "spawnvp")}
PROCESS_FUNCS = {"run", "Popen", "call", "check_call", "check_output"}


def python_sources() -> list[Path]:
    files = [ROOT / "install.py", *sorted((ROOT / "scripts").glob("*.py"))]
    files += sorted(p for p in (ROOT / "lib_lora_trainer").rglob("*.py") if "__pycache__" not in p.parts)
    return files


def shell_uses(path: Path) -> list[str]:
    found = []
    tree_ = ast.parse(path.read_text(encoding="utf-8"), str(path))
    for node in ast.walk(tree_):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        dotted = (func.value.id, func.attr) if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) \
            else (None, func.id if isinstance(func, ast.Name) else getattr(func, "attr", None))
        where = f"{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path.name}:{node.lineno}"
        for kw in node.keywords:
            if kw.arg == "shell" and not (isinstance(kw.value, ast.Constant) and kw.value.value is False):
                found.append(f"{where} shell=")
        if dotted in SHELL_FUNCS:
            found.append(f"{where} {'.'.join(dotted)}")
        if dotted[1] in PROCESS_FUNCS and dotted[0] in (None, "subprocess", "sp") and node.args:
            first = node.args[0]
            if isinstance(first, (ast.JoinedStr, ast.BinOp)) or (isinstance(first, ast.Constant)
                                                                  and isinstance(first.value, str)):
                found.append(f"{where} {dotted[1]}() with a command string")
    return found


def test_no_subprocess_goes_through_a_shell():
    files = python_sources()
    assert len(files) > 50
    problems = [p for f in files for p in shell_uses(f)]
    assert problems == [], "\n".join(problems)


def test_the_scanner_catches_what_it_should(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import os, subprocess\nos.system('x')\nsubprocess.run('ls -l')\n"
                   "subprocess.Popen(['a'], shell=True)\nsubprocess.check_output(f'{1}')\n"
                   "subprocess.run(['ok'], shell=False)\n")
    assert len(shell_uses(bad)) == 4

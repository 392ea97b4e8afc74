"""Python 3.10 to 3.13 for the code that runs in the host's process: A1111 1.10 runs Python 3.10,
Forge Neo 3.13, and our own environments 3.11. The host-process code (the tab, the API, the job
service, dataset tools, hosts/, scripts/, install.py) is parsed with Python 3.10's grammar and may
use no standard-library name added after 3.10 unless it guards the import; no code of ours (the
trainer side included, whose environment is 3.11 to 3.13) imports a module that Python 3.12 or
3.13 removed. This interpreter is 3.11, so syntax newer than 3.11 fails here anyway."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "lib_lora_trainer"
# Runs only in the trainer environment (a subprocess, Python >= 3.11: trainer_env/requirements.py).
TRAINER_SIDE = ("engines/builtin/", "demo/", "generation/", "evaluate/renderer.py", "evaluate/embedding.py")

# Standard-library names that Python 3.10 lacks: (module, name); a module alone is (module, None).
NEW_AFTER_310 = {
    ("tomllib", None), ("wsgiref.types", None),
    *(("typing", n) for n in ("Self", "LiteralString", "Never", "assert_never", "assert_type", "reveal_type",
                              "Required", "NotRequired", "TypeVarTuple", "Unpack", "dataclass_transform",
                              "get_overloads", "clear_overloads", "override", "TypeAliasType", "ReadOnly",
                              "TypeIs", "get_protocol_members", "is_protocol", "NoDefault")),
    *(("enum", n) for n in ("StrEnum", "ReprEnum", "EnumCheck", "FlagBoundary", "verify", "member", "nonmember",
                            "global_enum", "property", "show_flag_values")),
    ("datetime", "UTC"), ("hashlib", "file_digest"), ("contextlib", "chdir"), ("itertools", "batched"),
    ("operator", "call"), ("math", "exp2"), ("math", "cbrt"), ("sys", "exception"), ("sys", "monitoring"),
    ("asyncio", "TaskGroup"), ("asyncio", "timeout"), ("asyncio", "timeout_at"), ("asyncio", "Runner"),
    ("logging", "getLevelNamesMapping"), ("logging", "getHandlerByName"), ("inspect", "markcoroutinefunction"),
    ("inspect", "getmembers_static"), ("re", "NOFLAG"), ("copy", "replace"), ("warnings", "deprecated"),
    ("types", "get_original_bases"), ("os", "process_cpu_count"),
}
NEW_BUILTINS_AFTER_310 = {"ExceptionGroup", "BaseExceptionGroup", "PythonFinalizationError"}
NEW_METHODS_AFTER_310 = {"add_note", "is_junction", "walk_up", "from_uri", "full_match"}  # 3.11+ / 3.12+ / 3.13
# Gone by Python 3.13 (PEP 594 and 3.12's removals).
REMOVED_BY_313 = {"aifc", "audioop", "cgi", "cgitb", "chunk", "crypt", "imghdr", "mailcap", "msilib", "nis",
                  "nntplib", "ossaudiodev", "pipes", "sndhdr", "spwd", "sunau", "telnetlib", "uu", "xdrlib",
                  "lib2to3", "distutils", "imp", "asynchat", "asyncore", "smtpd"}


def _files(host_only: bool) -> list[Path]:
    files = sorted(PACKAGE.rglob("*.py")) + sorted((ROOT / "scripts").glob("*.py")) + [ROOT / "install.py"]
    if host_only:
        files = [f for f in files if not (f.is_relative_to(PACKAGE)
                                           and f.relative_to(PACKAGE).as_posix().startswith(TRAINER_SIDE))]
    return files


def _guarded(node: ast.AST, parents: dict) -> bool:
    """Inside `try: ... except ImportError/ModuleNotFoundError/AttributeError` or `if sys.version_info`."""
    child, node = node, parents.get(node)
    while node is not None:
        if isinstance(node, ast.Try) and child in node.body:
            names = {ast.unparse(h.type) for h in node.handlers if h.type is not None}
            if any(n in s for s in names for n in ("ImportError", "ModuleNotFoundError", "AttributeError",
                                                    "Exception")):
                return True
        if isinstance(node, ast.If) and "version_info" in ast.unparse(node.test):
            return True
        child, node = node, parents.get(node)
    return False


def _problems(path: Path, host: bool) -> list[str]:
    text = path.read_text(encoding="utf-8")
    tree = ast.parse(text, str(path), feature_version=(3, 10) if host else (3, 11))
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    aliases: dict[str, str] = {}   # local name -> module, from `import x as y`
    out = []

    def flag(node, what):
        if not _guarded(node, parents):
            out.append(f"{path.relative_to(ROOT)}:{node.lineno}: {what}")

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                aliases[a.asname or a.name.split(".")[0]] = a.name if a.asname else a.name.split(".")[0]
                if a.name.split(".")[0] in REMOVED_BY_313:
                    flag(node, f"imports {a.name}, removed in Python 3.12/3.13")
                if host and (a.name, None) in NEW_AFTER_310:
                    flag(node, f"imports {a.name} (Python 3.11+)")
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            if node.module.split(".")[0] in REMOVED_BY_313:
                flag(node, f"imports from {node.module}, removed in Python 3.12/3.13")
            if host and (node.module, None) in NEW_AFTER_310:
                flag(node, f"imports from {node.module} (Python 3.11+)")
            for a in node.names:
                if host and (node.module, a.name) in NEW_AFTER_310:
                    flag(node, f"{node.module}.{a.name} (Python 3.11+)")
        elif host and isinstance(node, ast.Attribute):
            if isinstance(node.value, ast.Name) and (aliases.get(node.value.id, node.value.id), node.attr) \
                    in NEW_AFTER_310:
                flag(node, f"{node.value.id}.{node.attr} (Python 3.11+)")
            elif node.attr in NEW_METHODS_AFTER_310 and isinstance(parents.get(node), ast.Call):
                flag(node, f".{node.attr}() (Python 3.11+)")
        elif host and isinstance(node, ast.Name) and node.id in NEW_BUILTINS_AFTER_310:
            flag(node, f"{node.id} (Python 3.11+)")
    return out


def test_host_process_code_is_python_310_code():
    files = _files(host_only=True)
    assert len(files) > 80 and PACKAGE / "ui" / "gradio_compat.py" in files
    problems = [p for f in files for p in _problems(f, host=True)]
    assert not problems, "\n".join(problems)


def test_no_code_imports_a_module_python_313_removed():
    problems = [p for f in _files(host_only=False) for p in _problems(f, host=False)]
    assert not problems, "\n".join(problems)


def test_the_checks_catch_what_they_are_for(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import tomllib\nfrom typing import Self\nimport imghdr\nimport datetime\nx = datetime.UTC\n"
                   "try:\n    import tomllib as t\nexcept ImportError:\n    t = None\n"
                   "def f(e):\n    e.add_note('x')\n    raise ExceptionGroup('g', [e])\n", encoding="utf-8")
    global ROOT
    root, ROOT = ROOT, tmp_path
    try:
        found = _problems(bad, host=True)
    finally:
        ROOT = root
    assert sorted(p.split(": ", 1)[1] for p in found) == sorted([
        "imports tomllib (Python 3.11+)", "typing.Self (Python 3.11+)", "imports imghdr, removed in Python 3.12/3.13",
        "datetime.UTC (Python 3.11+)", ".add_note() (Python 3.11+)", "ExceptionGroup (Python 3.11+)"]), found
    try:
        ast.parse("try:\n    pass\nexcept* ValueError:\n    pass\n", feature_version=(3, 10))
        raise AssertionError("3.10's grammar should refuse except*")
    except SyntaxError:
        pass

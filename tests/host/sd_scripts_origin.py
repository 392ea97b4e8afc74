"""A local git repository to install sd-scripts from, made of releases of a local sd-scripts
git directory (a fetched snapshot), for the managed-install host test and real runs here:

    python tests/host/sd_scripts_origin.py --mirror /work/.mirror/kohya-ss+sd-scripts/repo \
        --out /work/hosts/sd-scripts-origin v0.10.1 main

Each ref becomes a commit with the ref's tree and a tag of the same name ("main" becomes the tag
main-<short sha>), so `git clone --branch TAG` works on it like on GitHub. A snapshot may lack the
blobs of some large files (model tokenizers of other architectures): those files are left out and
listed, and the commit message says which upstream commit the tree is. Never fetches anything.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from setup_a1111 import git, run, say, write_tree  # noqa: E402


def add_release(mirror: Path, out: Path, ref: str) -> str:
    sha = git(mirror, "rev-parse", f"{ref}^{{commit}}").stdout.strip()
    tag = ref if ref.startswith("v") else f"{ref}-{sha[:7]}"
    if run(["git", "-C", out, "rev-parse", "-q", "--verify", f"refs/tags/{tag}"], capture=True,
           check=False).returncode == 0:
        say(f"{tag} is there")
        return tag
    with tempfile.TemporaryDirectory() as tmp:
        tree = Path(tmp)
        skipped = write_tree(mirror, sha, tree)
        work = ["git", f"--git-dir={out / '.git'}", f"--work-tree={tree}"]
        run([*work, "add", "-A", "."], capture=True)
        message = f"sd-scripts {ref} = upstream {sha}" + (
            f"\n\nleft out (blobs missing in the snapshot): {', '.join(skipped)}" if skipped else "")
        run([*work, "-c", "user.name=lora-trainer", "-c", "user.email=lora-trainer@localhost", "commit", "-q",
             "--allow-empty", "-m", message], capture=True)
        run(["git", "-C", out, "tag", tag], capture=True)
        say(f"{tag}: upstream {sha[:10]}, {len(skipped)} file(s) left out" + (f": {', '.join(skipped)}"
                                                                               if skipped else ""))
    return tag


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mirror", type=Path, required=True, help="a local sd-scripts git directory")
    p.add_argument("--out", type=Path, required=True, help="the repository to make (or add releases to)")
    p.add_argument("refs", nargs="+", help="tags or branches of the mirror, e.g. v0.10.1 main")
    a = p.parse_args(argv)
    out = a.out.expanduser().resolve()
    if not (out / ".git").is_dir():
        out.mkdir(parents=True, exist_ok=True)
        subprocess.run(["git", "init", "-q", str(out)], check=True)
    for ref in a.refs:
        add_release(a.mirror.expanduser().resolve(), out, ref)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Face identity (evaluate/face_identity.py) with the real dlib model, installed the way a user's
first test installs it (pip --target into the data dir; here from `make test`'s local wheel folder),
on a real photograph shipped in a pip package: scikit-image's `astronaut` (and its LFW subset for
other people's faces), read out of the downloaded wheel."""

import io
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageEnhance, ImageOps

from lib_lora_trainer.evaluate import face_identity as F
from lib_lora_trainer.evaluate.scoring import EvalContext

ROOT = Path(__file__).resolve().parent.parent
WHEELS = ROOT / ".venv" / "face-wheels"

pytestmark = pytest.mark.skipif(not (WHEELS / ".complete").is_file(),
                                reason="no local face wheels: `make face-wheels` (part of `make test`) downloads them")


def _skimage_file(name: str) -> bytes:
    wheel = next(WHEELS.glob("scikit_image-*.whl"))
    with zipfile.ZipFile(wheel) as z:
        return z.read(f"skimage/data/{name}")


@pytest.fixture(scope="module")
def deps(tmp_path_factory):
    """dlib + the model files installed by the scorer's own first-use install, into a data dir."""
    data = tmp_path_factory.mktemp("data")
    lines: list[str] = []
    F.install_deps(F.deps_dir(data), lines.append, pip_args=("--no-index", "--find-links", str(WHEELS)))
    found = F.find_deps(F.deps_dir(data))
    assert found is not None and "about 105 MB" in lines[0]
    return data, F.FaceEmbedder(*found)


@pytest.fixture(scope="module")
def astronaut():
    return Image.open(io.BytesIO(_skimage_file("astronaut.png"))).convert("RGB")


def _variants(img: Image.Image) -> dict[str, Image.Image]:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=40)
    return {"mirrored": ImageOps.mirror(img), "cropped": img.crop((60, 0, 360, 300)),
            "brighter": ImageEnhance.Brightness(img).enhance(1.4), "darker": ImageEnhance.Brightness(img).enhance(0.6),
            "jpeg q40": Image.open(io.BytesIO(buf.getvalue())).convert("RGB"), "256 px": img.resize((256, 256))}


def _lfw_faces(embedder) -> list[np.ndarray]:
    faces = np.load(io.BytesIO(_skimage_file("lfw_subset.npy")))[:100]   # the first 100 are faces
    pictures = [Image.fromarray((f * 255).astype(np.uint8)).convert("RGB").resize((200, 200), Image.Resampling.BICUBIC)
                for f in faces]
    return embedder.embed_all(pictures)


def test_the_same_face_stays_close_after_flips_crops_brightness_and_jpeg(deps, astronaut):
    _, embedder = deps
    reference = embedder.embed(astronaut)
    assert reference is not None and reference.shape == (128,)
    distances = {name: float(np.linalg.norm(embedder.embed(v) - reference)) for name, v in _variants(astronaut).items()}
    others = _lfw_faces(embedder)
    nearest_other = min(float(np.linalg.norm(o - reference)) for o in others)
    print(f"\nastronaut vs its variants: {', '.join(f'{k} {v:.3f}' for k, v in distances.items())}; "
          f"nearest of {len(others)} LFW faces {nearest_other:.3f}")
    assert max(distances.values()) < 0.35 < F.SAME_PERSON          # same person, with room to spare
    assert len(others) >= 40 and nearest_other > max(distances.values()) + 0.2
    assert all(F.similarity(embedder.embed(v), [reference]) > 0.7 for v in _variants(astronaut).values())
    assert F.similarity(others[0], [reference]) < 0.5


def _fresh_python(code: str) -> str:
    """Run `code` in a new Python of this environment (no dlib imported or on its path yet)."""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_the_demo_cartoons_show_no_face_and_a_cartoon_dataset_installs_nothing(deps, tmp_path):
    from lib_lora_trainer.demo.sample_dataset import _photo, shots

    _, embedder = deps
    cartoons = [_photo(p, i) for i, p in enumerate(shots())]
    assert all(embedder.embed(c) is None for c in cartoons)
    assert all(embedder.embed(c.resize((64, 64))) is None for c in cartoons)
    # A first test on a cartoon dataset: OpenCV finds no face, so nothing is downloaded.
    out = _fresh_python(
        "from pathlib import Path\n"
        "from lib_lora_trainer.demo.sample_dataset import _photo, shots\n"
        "from lib_lora_trainer.evaluate import face_identity as F\n"
        "from lib_lora_trainer.evaluate.scoring import EvalContext\n"
        f"data = Path({str(tmp_path)!r})\n"
        "assert F.find_deps(F.deps_dir(data)) is None, 'this Python has dlib of its own'\n"
        "def installed(line): raise SystemExit('installed: ' + line)\n"
        "scorer = F.FaceIdentityScorer(data, say=installed)\n"
        "print(scorer.unavailable_reason(EvalContext('zyrette', [_photo(p, i) for i, p in enumerate(shots())])))\n"
        "print(F.deps_dir(data).exists())\n")
    assert out.splitlines() == ["face identity skipped: 0 of 16 dataset pictures show a face", "False"]


def test_scores_of_generated_pictures_count_missing_faces_and_use_held_out_faces(deps, astronaut):
    data, _ = deps
    variants = list(_variants(astronaut).values())
    ctx = EvalContext("astro", dataset_images=variants[:4], holdout_images=variants[4:])
    scorer = F.FaceIdentityScorer(data, install=False)
    assert scorer.unavailable_reason(ctx) is None
    assert "faces found in 4 of 4 dataset pictures, 2 of 2 held-out pictures" in ctx.notes["face identity"]
    assert "99.38% on LFW" in ctx.notes["face identity"]
    from lib_lora_trainer.demo.sample_dataset import _photo, shots

    cartoon = _photo(shots()[0], 0)
    half = scorer.score([astronaut, cartoon], "astro", [], ctx)
    assert half["face_found"] == 0.5 and half["face_same_person"] == 0.5
    assert half["face_identity"] > 0.7 and half["face_identity_holdout"] > 0.7
    none = scorer.score([cartoon, cartoon], "astro", [], ctx)
    assert none == {"face_found": 0.0, "face_identity": 0.0, "face_identity_holdout": 0.0, "face_same_person": 0.0}


def test_install_failure_is_a_reason_not_a_crash(tmp_path):
    """No wheel to install from (an offline machine): the scorer is skipped and says why."""
    out = _fresh_python(
        "import io, zipfile\nfrom pathlib import Path\nfrom PIL import Image\n"
        "from lib_lora_trainer.evaluate import face_identity as F\n"
        "from lib_lora_trainer.evaluate.scoring import EvalContext\n"
        f"data = Path({str(tmp_path)!r})\n"
        "assert F.find_deps(F.deps_dir(data)) is None, 'this Python has dlib of its own'\n"
        f"wheel = zipfile.ZipFile(next(Path({str(WHEELS)!r}).glob('scikit_image-*.whl')))\n"
        "astronaut = Image.open(io.BytesIO(wheel.read('skimage/data/astronaut.png'))).convert('RGB')\n"
        "scorer = F.FaceIdentityScorer(data, say=print, pip_args=('--no-index', '--find-links', str(data)))\n"
        "print(scorer.unavailable_reason(EvalContext('astro', [astronaut, astronaut])))\n")
    lines = out.splitlines()
    assert lines[0].startswith("face identity: installing dlib-bin==20.0.1.post1, face-recognition-models==0.3.0")
    assert lines[-1].startswith("face identity skipped: pip could not install dlib-bin==20.0.1.post1")


def test_a_fresh_python_imports_dlib_from_the_data_dir(deps):
    """What another process (a later test, the web UI's Python) finds: the data dir's packages."""
    data, _ = deps
    code = ("import sys; from pathlib import Path; from lib_lora_trainer.evaluate import face_identity as F; "
            f"found = F.find_deps(F.deps_dir(Path({str(data)!r}))); print(found[0].__file__, found[1])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True).stdout
    assert str(F.deps_dir(data)) in out

"""Face identity for face LoRAs: does the generated person look like the dataset's person?

The model is dlib's ResNet face embedding (`dlib_face_recognition_resnet_model_v1`, 99.38% on
the LFW benchmark; two faces closer than 0.6 are the same person by dlib's rule) with dlib's HOG
face detector and 5-point aligner. Its weights come in the `face-recognition-models` package,
dlib in the `dlib-bin` wheels; both are installed on first use (pip, no dependencies) into
`<data dir>/scorers/face/py3X`, for whichever Python runs the test (the trainer environment
standalone, the web UI's own inside A1111 / Forge Neo), and only when the dataset shows faces
(OpenCV's frontal-face detector, which every supported environment has, decides that cheaply).

Scores per cell (pictures of one prompt and weight, all seeds):
- face_found: share of the pictures with a face;
- face_identity: mean similarity of their faces to the dataset's faces, 1 - distance / 1.2
  (0.5 = dlib's same-person threshold; a picture without a face is not counted here, the
  ranking multiplies by face_found);
- face_identity_holdout: the same against the held-out faces (holdout_images > 0);
- face_same_person: share of the pictures whose face is within 0.6 of the dataset's mean face.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

PACKAGES = ("dlib-bin==20.0.1.post1", "face-recognition-models==0.3.0")
MODEL_NAME = ("dlib ResNet face embedding (dlib_face_recognition_resnet_model_v1 from face-recognition-models "
              "0.3.0; 99.38% on LFW; same person below distance 0.6)")
SAME_PERSON = 0.6
MIN_FACE_SHARE = 0.5           # of the dataset pictures, for the LoRA to count as a face LoRA
# dlib's HOG detector score a face must reach: the demo's cartoon faces score up to 0.38 (measured on
# its 16 sample pictures, 512 px and 64 px), the astronaut photograph 1.16.
MIN_DETECTION = 0.5
DOWNLOAD_MB = 105              # dlib-bin ~4 MB + face-recognition-models ~100 MB


class FaceDepsError(RuntimeError):
    pass


def deps_dir(data_dir: Path | None = None) -> Path:
    if data_dir is None:
        from lib_lora_trainer.paths import data_dir as default

        data_dir = default()
    return Path(data_dir) / "scorers" / "face" / f"py{sys.version_info.major}{sys.version_info.minor}"


def _models_dir() -> Path | None:
    # face_recognition_models imports pkg_resources, gone from new setuptools: find its files instead.
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(list(spec.submodule_search_locations)[0]) / "models"
    return folder if (folder / "dlib_face_recognition_resnet_model_v1.dat").is_file() else None


def find_deps(target: Path) -> tuple[object, Path] | None:
    """(dlib, models folder) from this Python's packages or from `target`; None if missing."""
    for attempt in range(2):
        try:
            import dlib  # noqa: F401
        except ImportError:
            dlib = None
        models = _models_dir()
        if dlib is not None and models is not None:
            return dlib, models
        if attempt == 0 and target.is_dir() and str(target) not in sys.path:
            sys.path.append(str(target))   # appended: never shadows what the environment has
            importlib.invalidate_caches()
    return None


def install_deps(target: Path, say: Callable[[str], None] = print, pip_args: tuple[str, ...] = ()) -> None:
    """pip install the packages into `target` (no dependencies: both need none), with this Python."""
    target.mkdir(parents=True, exist_ok=True)
    say(f"face identity: installing {', '.join(PACKAGES)} (about {DOWNLOAD_MB} MB) into {target}")
    cmd = [sys.executable, "-m", "pip", "install", "--disable-pip-version-check", "--no-deps", "--target",
           str(target), *pip_args, *PACKAGES]
    done = subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if done.returncode != 0:
        tail = " ".join((done.stderr or done.stdout).strip().splitlines()[-3:])
        raise FaceDepsError(f"pip could not install {', '.join(PACKAGES)} into {target}: {tail}")


def shows_faces(images: list[Image.Image]) -> tuple[int, int] | None:
    """(pictures with a frontal face, pictures) by OpenCV's Haar detector; None without OpenCV."""
    try:
        import cv2
    except ImportError:
        return None
    cascade = cv2.CascadeClassifier(os.path.join(cv2.data.haarcascades, "haarcascade_frontalface_default.xml"))
    found = 0
    for im in images:
        gray = np.asarray(im.convert("L"))
        if len(cascade.detectMultiScale(gray, scaleFactor=1.1, minNeighbors=4, minSize=(24, 24))):
            found += 1
    return found, len(images)


class FaceEmbedder:
    def __init__(self, dlib, models: Path):
        self.detector = dlib.get_frontal_face_detector()
        self.aligner = dlib.shape_predictor(str(models / "shape_predictor_5_face_landmarks.dat"))
        self.encoder = dlib.face_recognition_model_v1(str(models / "dlib_face_recognition_resnet_model_v1.dat"))

    def embed(self, image: Image.Image) -> np.ndarray | None:
        """The 128-d embedding of the largest face, or None when there is no face."""
        a = np.ascontiguousarray(np.asarray(image.convert("RGB")))
        upsample = 2 if min(a.shape[:2]) < 384 else 1    # small pictures: look for small faces too
        faces, _, _ = self.detector.run(a, upsample, MIN_DETECTION)
        if not faces:
            return None
        face = max(faces, key=lambda r: r.area())
        return np.asarray(self.encoder.compute_face_descriptor(a, self.aligner(a, face)), dtype=np.float64)

    def embed_all(self, images: list[Image.Image]) -> list[np.ndarray]:
        return [e for e in (self.embed(im) for im in images) if e is not None]


def similarity(face: np.ndarray, reference: list[np.ndarray]) -> float:
    """1 - mean distance / 1.2, in 0..1: 0.5 at dlib's same-person distance."""
    d = float(np.mean([np.linalg.norm(face - r) for r in reference]))
    return max(0.0, min(1.0, 1.0 - d / (2 * SAME_PERSON)))


class FaceIdentityScorer:
    name = "face_identity"

    def __init__(self, data_dir: Path | None = None, install: bool = True, say: Callable[[str], None] = print,
                 pip_args: tuple[str, ...] = ()):
        self.target = deps_dir(data_dir) if data_dir is not None else None
        self.install, self.say, self.pip_args = install, say, pip_args
        self.embedder: FaceEmbedder | None = None
        self.dataset: list[np.ndarray] = []
        self.holdout: list[np.ndarray] = []
        self.centre: np.ndarray | None = None      # the dataset's mean face, for face_same_person

    def _load(self, ctx) -> str | None:
        target = self.target or deps_dir()
        found = find_deps(target)
        if found is None:
            if not self.install:
                return f"face identity skipped: dlib is not installed (pip install {' '.join(PACKAGES)})"
            counted = shows_faces(ctx.dataset_images)
            if counted is None:
                return "face identity skipped: OpenCV is missing here, so faces in the dataset cannot be looked for"
            if counted[0] < MIN_FACE_SHARE * counted[1]:
                return f"face identity skipped: {counted[0]} of {counted[1]} dataset pictures show a face"
            try:
                install_deps(target, self.say, self.pip_args)
            except FaceDepsError as exc:
                return f"face identity skipped: {exc}"
            found = find_deps(target)
            if found is None:
                return f"face identity skipped: dlib was installed into {target} but does not import here"
        self.embedder = FaceEmbedder(*found)
        return None

    def unavailable_reason(self, ctx) -> str | None:
        if not ctx.dataset_images:
            return "face identity skipped: no dataset pictures"
        reason = self._load(ctx)
        if reason:
            return reason
        self.dataset = self.embedder.embed_all(ctx.dataset_images)
        self.holdout = self.embedder.embed_all(ctx.holdout_images)
        self.centre = np.mean(self.dataset, axis=0) if self.dataset else None
        n = len(ctx.dataset_images)
        ctx.notes["face identity"] = (f"{MODEL_NAME}; faces found in {len(self.dataset)} of {n} dataset pictures"
                                      + (f", {len(self.holdout)} of {len(ctx.holdout_images)} held-out pictures"
                                         if ctx.holdout_images else ""))
        if len(self.dataset) < MIN_FACE_SHARE * n:
            return f"face identity skipped: dlib finds a face in {len(self.dataset)} of {n} dataset pictures"
        return None

    def score(self, images, prompt, base_images, ctx) -> dict[str, float]:
        faces = self.embedder.embed_all(images)
        out = {"face_found": round(len(faces) / max(1, len(images)), 4)}
        out["face_identity"] = round(float(np.mean([similarity(f, self.dataset) for f in faces])), 4) if faces else 0.0
        if self.holdout:
            out["face_identity_holdout"] = (round(float(np.mean([similarity(f, self.holdout) for f in faces])), 4)
                                            if faces else 0.0)
        out["face_same_person"] = round(sum(np.linalg.norm(f - self.centre) < SAME_PERSON for f in faces)
                                        / max(1, len(images)), 4)
        return out

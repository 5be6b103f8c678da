"""The real-photo corpus of the tests: photos from package registries, and crops and transforms
of them that the tests make.

Sources (never committed; fetched at set-up, never at run time):

- scikit-image (a dev dependency): ``astronaut`` (NASA, public domain: a portrait with wide
  margins) and ``chelsea`` (a cat), ``coffee`` (a cup: no face at all);
- the ``insightface`` 2.1 wheel on PyPI (MIT): ``Tom_Hanks_54745.png`` (a 112 x 112 greyscale
  close-up, the face filling the photo) and ``t1.jpg`` (six people around a table).
  ``python -m tests.corpus`` (run by ``make setup``) downloads the wheel into
  ``build/downloads`` with pip and copies the two pictures, checked against their SHA-256, to
  ``build/assets/corpus``.

Each :class:`Photo` says whether it shows human faces; the derived photos cover the framings an
app's users send: a tight headshot, a face cut by each edge, a 40-pixel face in a 2000-pixel
photo, portrait and landscape crops, a turned photo, greyscale.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import skimage.color
import skimage.data
from PIL import Image

from reenact.assets import assets_dir, build_dir

INSIGHTFACE = "insightface==2.1"
INSIGHTFACE_WHEEL = "insightface-2.1-py3-none-any.whl"
INSIGHTFACE_IMAGES = {
    "Tom_Hanks_54745.png": "8545da294e8c7c79911169c3915fed8528f1960cd0ed99b92453788ca4275083",
    "t1.jpg": "47f682e945b659f93a9e490b9c9c4a2a864abe64dace9e1a2893845ddfd69489",
}
ASTRONAUT_FACE = (178, 83, 273, 178)  # x0, y0, x1, y1: BlazeFace's box, rounded


@dataclass(frozen=True)
class Photo:
    """One corpus picture. image: (H, W, 3) uint8 RGB."""

    name: str
    image: np.ndarray
    human: bool  # shows at least one human face the service must serve
    faces: int = 1  # human faces in it (0 for non-human pictures)


def corpus_dir() -> Path:
    return assets_dir() / "corpus"


def fetch(folder: Path | None = None) -> Path:
    """Make sure the insightface pictures are in ``folder`` (default :func:`corpus_dir`)."""
    folder = folder or corpus_dir()
    if all(_sha256(folder / name) == digest for name, digest in INSIGHTFACE_IMAGES.items()):
        return folder
    downloads = build_dir() / "downloads"
    wheel = downloads / INSIGHTFACE_WHEEL
    if not wheel.is_file():
        print(f"corpus: downloading the {INSIGHTFACE} wheel (1.2 MB) into {downloads}")
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary"]
        command += [":all:", INSIGHTFACE, "-d", str(downloads)]
        subprocess.run(command, check=True)
    folder.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheel) as archive:
        for name, digest in INSIGHTFACE_IMAGES.items():
            data = archive.read(f"insightface/data/images/{name}")
            if hashlib.sha256(data).hexdigest() != digest:
                raise RuntimeError(f"{name} in {wheel} does not match its recorded SHA-256")
            (folder / name).write_bytes(data)
    print(f"corpus: {', '.join(INSIGHTFACE_IMAGES)} in {folder}")
    return folder


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else ""


def _read(name: str) -> np.ndarray:
    path = corpus_dir() / name
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: run `make setup` (python -m tests.corpus)")
    return np.asarray(Image.open(path).convert("RGB"))


def tom_hanks() -> np.ndarray:
    """(112, 112, 3) uint8: a greyscale close-up, the face filling the photo."""
    return _read("Tom_Hanks_54745.png")


def group() -> np.ndarray:
    """(886, 1280, 3) uint8: six people around a table."""
    return _read("t1.jpg")


def _cut(image: np.ndarray, box: tuple[int, int, int, int], edge: str, share: float):
    """The photo cropped so that ``share`` of the face box's size lies past ``edge``."""
    x0, y0, x1, y1 = box
    height, width = image.shape[:2]
    cut_x, cut_y = int(share * (x1 - x0)), int(share * (y1 - y0))
    rows, cols = slice(0, height), slice(0, width)
    if edge == "left":
        cols = slice(x0 + cut_x, width)
    elif edge == "right":
        cols = slice(0, x1 - cut_x)
    elif edge == "top":
        rows = slice(y0 + cut_y, height)
    else:
        rows = slice(0, y1 - cut_y)
    return np.ascontiguousarray(image[rows, cols])


def tiny_face_in_large_photo(face_width: int = 40) -> np.ndarray:
    """(1500, 2000, 3) uint8: the astronaut shrunk so her face box is ``face_width`` pixels
    wide, placed off-centre on a textured (noisy, smooth) background."""
    astronaut = skimage.data.astronaut()
    factor = face_width / (ASTRONAUT_FACE[2] - ASTRONAUT_FACE[0])
    size = round(astronaut.shape[1] * factor)
    small = cv2.resize(astronaut, (size, size), interpolation=cv2.INTER_AREA)
    noise = np.random.default_rng(7).normal(0.0, 1.0, (150, 200, 3))
    background = cv2.resize(noise, (2000, 1500), interpolation=cv2.INTER_CUBIC)
    photo = np.clip(110 + 40 * background, 0, 255).astype(np.uint8)
    photo[900 : 900 + size, 1300 : 1300 + size] = small
    return photo


def human_photos() -> list[Photo]:
    """Real photos and framings the service must serve."""
    astronaut = skimage.data.astronaut()
    x0, y0, x1, y1 = ASTRONAUT_FACE
    photos = [
        Photo("astronaut", astronaut, True),
        Photo("tom_hanks_closeup", tom_hanks(), True),
        Photo("group_t1", group(), True, faces=6),
        Photo("headshot_tight", astronaut[y0 - 25 : y1 + 20, x0 - 15 : x1 + 15].copy(), True),
        Photo("portrait_tall", astronaut[:, 110:340].copy(), True),
        Photo("landscape_wide", astronaut[60:250].copy(), True),
        Photo("greyscale", np.repeat(skimage.color.rgb2gray(astronaut)[..., None], 3, -1), True),
        Photo("turned_20deg", _turned(astronaut, 20.0), True),
        Photo("tiny_face_40px", tiny_face_in_large_photo(), True),
    ]
    for edge in ("left", "right", "top", "bottom"):
        photos.append(Photo(f"cut_{edge}", _cut(astronaut, ASTRONAUT_FACE, edge, 0.15), True))
    return [_as_uint8(p) for p in photos]


def non_human_photos() -> list[Photo]:
    """Pictures whose only "face" is not a human one: the service must refuse them."""
    return [
        Photo("cat_chelsea", skimage.data.chelsea(), False, faces=0),
        Photo("coffee_cup", skimage.data.coffee(), False, faces=0),
    ]


def _turned(image: np.ndarray, degrees: float) -> np.ndarray:
    height, width = image.shape[:2]
    rotation = cv2.getRotationMatrix2D((width / 2, height / 2), degrees, 1.0)
    return cv2.warpAffine(image, rotation, (width, height), borderMode=cv2.BORDER_REFLECT)


def _as_uint8(photo: Photo) -> Photo:
    image = photo.image
    if image.dtype != np.uint8:
        image = np.clip(np.rint(image * 255.0), 0, 255).astype(np.uint8)
    return Photo(photo.name, np.ascontiguousarray(image), photo.human, photo.faces)


if __name__ == "__main__":
    fetch()

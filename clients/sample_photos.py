"""Real photos for the demo and the tests, from package registries (never committed).

- scikit-image (installed with the dev extras): ``astronaut`` (NASA, public domain);
- the ``insightface`` 2.1 wheel on PyPI (MIT): ``Tom_Hanks_54745.png`` (a 112 x 112 greyscale
  close-up, the face filling the photo) and ``t1.jpg`` (six people around a table).
  ``python -m clients.sample_photos`` (run by ``make setup``) downloads the wheel into
  ``build/downloads`` with pip, without installing it, and copies the two pictures, checked
  against their recorded SHA-256, to ``build/assets/photos``.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

from reenact.assets import assets_dir, build_dir

INSIGHTFACE = "insightface==2.1"
INSIGHTFACE_WHEEL = "insightface-2.1-py3-none-any.whl"
INSIGHTFACE_IMAGES = {
    "Tom_Hanks_54745.png": "8545da294e8c7c79911169c3915fed8528f1960cd0ed99b92453788ca4275083",
    "t1.jpg": "47f682e945b659f93a9e490b9c9c4a2a864abe64dace9e1a2893845ddfd69489",
}


def photos_dir() -> Path:
    return assets_dir() / "photos"


def file_sha256(path: Path) -> str:
    """The SHA-256 of a file, "" when there is none."""
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else ""


def write_checked(data: bytes, path: Path, digest: str, what: str) -> None:
    """Write ``data`` to ``path`` if its SHA-256 is ``digest``; RuntimeError naming ``what``."""
    if hashlib.sha256(data).hexdigest() != digest:
        raise RuntimeError(f"{what} does not match its recorded SHA-256")
    path.write_bytes(data)


def fetch(folder: Path | None = None) -> Path:
    """Make sure the insightface pictures are in ``folder`` (default :func:`photos_dir`)."""
    folder = folder or photos_dir()
    if all(file_sha256(folder / name) == digest for name, digest in INSIGHTFACE_IMAGES.items()):
        return folder
    downloads = build_dir() / "downloads"
    wheel = downloads / INSIGHTFACE_WHEEL
    if not wheel.is_file():
        print(f"photos: downloading the {INSIGHTFACE} wheel (1.2 MB) into {downloads}")
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary"]
        command += [":all:", INSIGHTFACE, "-d", str(downloads)]
        subprocess.run(command, check=True)
    folder.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheel) as archive:
        for name, digest in INSIGHTFACE_IMAGES.items():
            data = archive.read(f"insightface/data/images/{name}")
            write_checked(data, folder / name, digest, f"{name} in {wheel}")
    print(f"photos: {', '.join(INSIGHTFACE_IMAGES)} in {folder}")
    return folder


def path(name: str) -> Path:
    """The file of one fetched photo; FileNotFoundError naming the set-up step."""
    file = photos_dir() / name
    if not file.is_file():
        raise FileNotFoundError(
            f"{file} is missing: run `make setup` (python -m clients.sample_photos)"
        )
    return file


def read(name: str) -> np.ndarray:
    """(H, W, 3) uint8 RGB of one fetched photo."""
    return np.asarray(Image.open(path(name)).convert("RGB"))


def tom_hanks() -> np.ndarray:
    """(112, 112, 3) uint8: a greyscale close-up, the face filling the photo."""
    return read("Tom_Hanks_54745.png")


def group() -> np.ndarray:
    """(886, 1280, 3) uint8: six people around a table."""
    return read("t1.jpg")


if __name__ == "__main__":
    fetch()

"""Photos from the ``insightface`` sdist (MIT): ``t1.jpg`` (a group of six) and
``Tom_Hanks_54745.png``, read out of the ``.tar.gz`` without installing the package.

The sdist is looked for in ``build/downloads`` and, if missing, fetched there with
``python -m pip download --no-deps --no-binary insightface insightface==0.7.3`` (a test set-up
step; nothing at serving time downloads anything).
"""

from __future__ import annotations

import subprocess
import sys
import tarfile
from pathlib import Path

import cv2
import numpy as np

from reenact.assets import build_dir

INSIGHTFACE_VERSION = "0.7.3"
SDIST_NAME = f"insightface-{INSIGHTFACE_VERSION}.tar.gz"
IMAGES_DIR = f"insightface-{INSIGHTFACE_VERSION}/insightface/data/images"


def insightface_sdist(folder: Path | None = None) -> Path:
    """``build/downloads/insightface-0.7.3.tar.gz`` (or in ``folder``), downloaded if missing."""
    folder = folder or build_dir() / "downloads"
    path = folder / SDIST_NAME
    if not path.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        # --no-binary for insightface only: the sdist is wanted, its build tools may be wheels.
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary"]
        command += ["insightface", f"insightface=={INSIGHTFACE_VERSION}", "-d", str(folder)]
        subprocess.run(command, check=True)
    return path


def insightface_image(name: str, sdist: Path | None = None) -> np.ndarray:
    """``(H, W, 3)`` uint8 RGB: ``insightface/data/images/<name>`` of the sdist."""
    with tarfile.open(sdist or insightface_sdist()) as archive:
        member = archive.extractfile(f"{IMAGES_DIR}/{name}")
        if member is None:
            raise FileNotFoundError(f"{name} is not a file of the insightface sdist")
        data = np.frombuffer(member.read(), np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError(f"{name} could not be decoded")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)

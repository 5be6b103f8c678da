"""Measure the face sizes :class:`reenact.landmarks.detection.FaceDetector` finds.

Real faces (scikit-image's astronaut, the six faces of insightface's ``t1.jpg`` and its
``Tom_Hanks_54745.png``) are pasted, scaled, into large grey photos, and cut into ever tighter
crops; the smallest and largest face widths found are printed as a fraction of the photo width
and in pixels. Off-line tool, not used at serving time:

    python -m export.measure_detection_range

The insightface photos are the ones ``make setup`` fetches (:mod:`clients.sample_photos`).
A face counts as found when a detection's box centre lies
inside the pasted face's box. Face widths are the detector's own box widths on the source.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass

import cv2
import numpy as np
import skimage.data
import torch

from clients import sample_photos
from reenact.landmarks.detection import DetectorConfig, FaceDetection, FaceDetector

WIDTHS = (12, 16, 20, 24, 28, 32, 36, 40, 48, 56, 64, 80, 96, 128, 160, 192)
"""Pasted face widths in pixels, for the small-face sweep."""
PHOTOS = ((480, 640), (1500, 2000))
"""(H, W) of the grey photos the faces are pasted into."""
TIGHTNESS = (0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.2, 1.35, 1.5)
"""Face box width / crop width, for the close-up sweep (> 1: the crop cuts into the face)."""


@dataclass(frozen=True)
class Face:
    """A face photo and the box (4,) float32 xyxy the detector finds on it at full size."""

    name: str
    image: np.ndarray
    box: np.ndarray


def reference_faces(detector: FaceDetector) -> list[Face]:
    """The astronaut, Tom Hanks and the six faces of t1.jpg, each with its detected box."""
    group = sample_photos.group()
    photos = {
        "astronaut": skimage.data.astronaut(),
        "tom_hanks": sample_photos.tom_hanks(),
    }
    faces = []
    for name, photo in photos.items():
        found = max(detector(photo), key=lambda f: f.area)
        faces.append(Face(name, photo, found.box))
    for index, found in enumerate(detector(group)):
        faces.append(Face(f"t1_{index}", group, found.box))
    return faces


def _crop_around(face: Face, margin: float) -> tuple[np.ndarray, np.ndarray]:
    """The face with ``margin`` x its width around it (replicated border): crop, box in it."""
    x0, y0, x1 = (float(v) for v in face.box[:3])
    pad = margin * (x1 - x0)
    left, top = round(x0 - pad), round(y0 - pad)
    size = round((x1 - x0) + 2 * pad)
    matrix = np.array([[1, 0, -left], [0, 1, -top]], np.float64)
    crop = cv2.warpAffine(face.image, matrix, (size, size), borderMode=cv2.BORDER_REPLICATE)
    return crop, face.box - np.array([left, top, left, top], np.float32)


def _found(faces: list[FaceDetection], box: np.ndarray) -> bool:
    return any(box[0] <= f.center[0] <= box[2] and box[1] <= f.center[1] <= box[3] for f in faces)


def found_in_large_photo(
    detector: FaceDetector, face: Face, width: int, photo: tuple[int, int]
) -> bool:
    """Whether ``face`` pasted at ``width`` px into a grey ``photo`` (H, W) photo is found."""
    crop, box = _crop_around(face, 0.5)
    scale = width / float(box[2] - box[0])
    crop = cv2.resize(crop, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    canvas = np.full((*photo, 3), 128, np.uint8)
    top, left = (photo[0] - crop.shape[0]) // 3, (photo[1] - crop.shape[1]) // 2
    canvas[top : top + crop.shape[0], left : left + crop.shape[1]] = crop
    return _found(detector(canvas), box * scale + np.array([left, top, left, top]))


def found_in_close_up(detector: FaceDetector, face: Face, tightness: float) -> bool:
    """Whether ``face`` is found in a square crop ``box width / tightness`` wide, 512 px."""
    x0, y0, x1, y1 = (float(v) for v in face.box)
    side = (x1 - x0) / tightness
    centre_x, centre_y = (x0 + x1) / 2, (y0 + y1) / 2
    scale = 512 / side
    matrix = np.array(
        [[scale, 0, 256 - scale * centre_x], [0, scale, 256 - scale * centre_y]], np.float64
    )
    crop = cv2.warpAffine(face.image, matrix, (512, 512), borderMode=cv2.BORDER_REPLICATE)
    box = np.array([256 - scale * (x1 - x0) / 2, 256 - scale * (y1 - y0) / 2] * 2, np.float32)
    box[2:] += scale * np.array([x1 - x0, y1 - y0], np.float32)
    return _found(detector(crop), box)


def sweep(detector: FaceDetector, faces: list[Face], photo: tuple[int, int]) -> None:
    """Print, per face, the smallest width found in a ``photo`` (H, W) photo."""
    smallest = []
    for face in faces:
        fitting = [w for w in WIDTHS if 2.2 * w < photo[0]]  # the face and its margin fit
        found = [w for w in fitting if found_in_large_photo(detector, face, w, photo)]
        missed_above = [w for w in fitting if found and w > found[0] and w not in found]
        smallest.append(found[0] if found else None)
        print(f"  {face.name:10s} smallest found {found[0] if found else '-'} px", end="")
        print(f" (then missed at {missed_above})" if missed_above else "")
    worst = max((s for s in smallest if s is not None), default=None)
    if worst is not None and None not in smallest:
        print(f"  every face found from {worst} px = {worst / photo[1]:.4f} of the photo width")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.parse_args(argv)
    torch.set_num_threads(1)
    detector = FaceDetector.from_assets()
    faces = reference_faces(detector)
    print(f"{len(faces)} reference faces: " + ", ".join(f.name for f in faces))
    configs = {
        "short range only": DetectorConfig(full_range=False),
        "short + full range 192 (MediaPipe's graphs)": DetectorConfig(max_input_side=0),
        "short + full range, enlarged input (default)": DetectorConfig(),
    }
    for label, config in configs.items():
        configured = FaceDetector(detector.short_range, detector.full_range, config)
        for photo in PHOTOS:
            print(f"{label}, {photo[1]}x{photo[0]} grey photo:")
            sweep(configured, faces, photo)
    print("close-ups (face box width / crop width), default config:")
    for face in faces:
        found = [t for t in TIGHTNESS if found_in_close_up(detector, face, t)]
        print(f"  {face.name:10s} found at {found}")
    image = np.full((1500, 2000, 3), 128, np.uint8)
    for label, config in configs.items():
        configured = FaceDetector(detector.short_range, detector.full_range, config)
        start = time.perf_counter()
        for _ in range(3):
            configured(image)
        print(f"{label}: {(time.perf_counter() - start) / 3 * 1000:.0f} ms on a 2000x1500 photo")
    return 0


if __name__ == "__main__":
    sys.exit(main())

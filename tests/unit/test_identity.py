"""dlib's face descriptor (dlib-bin + face-recognition-models from PyPI) on real faces."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import skimage.data

from reenact.identity import SAME_PERSON_DISTANCE, FaceEmbedder, descriptor_distance
from reenact.landmarks.detection import FaceDetector
from tests.corpus import ASTRONAUT_FACE, group


@pytest.fixture(scope="module")
def embedder() -> FaceEmbedder:
    return FaceEmbedder()


def test_descriptor_is_128_unit_scale_floats(embedder):
    descriptor = embedder.embed(skimage.data.astronaut(), ASTRONAUT_FACE)
    assert descriptor.shape == (128,) and descriptor.dtype == np.float32
    # dlib's descriptors have norms near 1 (not normalised exactly); a broken chip gives zeros
    assert 0.5 < float(np.linalg.norm(descriptor)) < 1.5


def test_five_points_lie_on_the_astronauts_eyes_and_nose(embedder):
    points = embedder.landmarks(skimage.data.astronaut(), ASTRONAUT_FACE)
    assert points.shape == (5, 2)
    # eye centres at about (204, 101) and (247, 103), read off the photo; the eye corners lie
    # within ~15 px of them, the base of the nose ~30 px below their midpoint
    eyes = points[:4]
    assert (np.abs(eyes[:, 1] - 102) < 10).all()
    assert (eyes[:, 0] > 185).all() and (eyes[:, 0] < 265).all()
    assert 120 < points[4, 1] < 145 and abs(points[4, 0] - 225) < 10


def test_a_shifted_rescaled_copy_is_the_same_person(embedder):
    astronaut = skimage.data.astronaut()
    scale, shift = 0.8, np.array([13.0, 7.0])
    moved = cv2.warpAffine(
        astronaut, np.float32([[scale, 0, shift[0]], [0, scale, shift[1]]]), (512, 512)
    )
    box = np.asarray(ASTRONAUT_FACE, np.float64) * scale + np.tile(shift, 2)
    assert embedder.distance(astronaut, ASTRONAUT_FACE, moved, box) < SAME_PERSON_DISTANCE / 2


def test_every_group_photo_face_is_another_person(embedder):
    astronaut = embedder.embed(skimage.data.astronaut(), ASTRONAUT_FACE)
    photo = group()
    faces = FaceDetector.from_assets()(photo)
    assert len(faces) == 6
    distances = [descriptor_distance(astronaut, embedder.embed(photo, f.box)) for f in faces]
    assert min(distances) > SAME_PERSON_DISTANCE


def test_an_empty_box_is_refused(embedder):
    with pytest.raises(ValueError, match="empty face box"):
        embedder.embed(skimage.data.astronaut(), (100, 100, 100, 150))

"""The human-face gate: its scores on synthetic landmark sets, and the served steps on the real
human and non-human pictures of the test corpus."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
import torch

from reenact import face_gate
from reenact.correspondence import Correspondence
from reenact.errors import RequestError
from reenact.fit import landmark_bases
from reenact.landmarks.detection import LandmarkConfig, RotatedRect, warp_crop
from reenact.morphable import FLIP_Y, MorphableModel, rotation_matrix
from reenact.pipeline import FaceMeshPipeline
from reenact.postprocess import PostprocessConfig, postprocess
from tests import corpus

CONFIG = PostprocessConfig()
ACCEPTED_WORDS = "photos, drawings and paintings of people are accepted"


def check(landmarks: np.ndarray, presence: float = 1.0) -> face_gate.GateScores:
    return face_gate.check_human_face(
        landmarks, presence, CONFIG.min_presence_log_odds, CONFIG.max_layout_distance
    )


def refusal(landmarks: np.ndarray, presence: float = 1.0) -> str:
    with pytest.raises(RequestError) as info:
        check(landmarks, presence)
    message = str(info.value)
    assert message.startswith("no human face found in IMAGE: ")
    assert ACCEPTED_WORDS in message
    return message


def photo_face(template: np.ndarray, yaw_deg: float = 0.0) -> np.ndarray:
    """The template as FaceMesh would report it in a 192-pixel crop: turned, 60 px radius."""
    rotation = rotation_matrix(0.0, math.radians(yaw_deg), 0.0).astype(np.float64)
    return (60.0 * template @ rotation.T + [96.0, 100.0, 0.0]).astype(np.float32)


def test_the_committed_template_is_the_ict_mean_face_at_the_correspondences():
    model, table = MorphableModel.load(), Correspondence.load()
    mean, _ = landmark_bases(model, table.tri_vertices, table.barycentric)
    expected = face_gate.normalise(mean * FLIP_Y)
    # the file stores 5 decimals of a unit-radius layout: 5e-6 rounding per coordinate
    np.testing.assert_allclose(face_gate.load_template(), expected, atol=2e-5)


@pytest.mark.parametrize("yaw_deg", [0.0, 25.0, -30.0])
def test_a_human_layout_passes_in_any_pose_scale_and_place(yaw_deg):
    scores = check(photo_face(face_gate.load_template(), yaw_deg))
    # float32 landmarks of a 60-pixel face: about 1e-7 relative rounding per coordinate
    assert scores.layout_distance < 1e-5
    assert scores.presence_log_odds == math.inf


def test_a_muzzle_like_layout_is_refused():
    """The lower face (below the eyes) twice as long and jutting forward, as on a dog."""
    points = face_gate.load_template().copy()
    lower = points[:, 1] > np.percentile(points[:, 1], 40)
    points[lower, 1] *= 2.0
    points[lower, 2] += 1.0 * (points[lower, 1] - points[lower, 1].min())
    message = refusal(photo_face(points))
    assert "does not have human proportions" in message


def test_a_stretched_layout_is_refused():
    points = face_gate.load_template() * [1.0, 2.0, 1.0]  # twice as tall as wide
    assert "human proportions" in refusal(photo_face(points))


def test_a_scrambled_layout_is_refused():
    points = np.random.default_rng(0).permutation(face_gate.load_template())
    assert "human proportions" in refusal(photo_face(points))


@pytest.mark.parametrize(
    "broken",
    [
        lambda p: np.where(np.arange(len(p))[:, None] == 7, np.nan, p),  # one NaN point
        lambda p: np.full_like(p, np.inf),
        lambda p: np.zeros_like(p),  # every point at one place
        lambda p: p[:100],  # too few points
    ],
)
def test_unusable_landmarks_are_refused_cleanly(broken):
    landmarks = broken(photo_face(face_gate.load_template()))
    assert face_gate.layout_distance(landmarks) == math.inf
    assert "no usable landmarks" in refusal(landmarks)


def test_a_face_the_landmark_network_doubts_is_refused_with_its_score():
    landmarks = photo_face(face_gate.load_template())
    presence = 0.9994  # log-odds 7.42: a puppy's face at a tight crop scores up to 7.87
    message = refusal(landmarks, presence)
    assert "does not look like a human face (human-face score 7.42 < 8.5)" in message
    assert check(landmarks, 0.99999).presence_log_odds > 11.5  # log(0.99999 / 0.00001)


def test_log_odds():
    assert face_gate.log_odds(0.5) == 0.0
    assert face_gate.log_odds(1.0 / (1.0 + math.exp(-8.5))) == pytest.approx(8.5, abs=1e-9)
    assert face_gate.log_odds(1.0) == math.inf
    assert face_gate.log_odds(0.0) == face_gate.log_odds(math.nan) == -math.inf


def test_postprocess_refuses_a_doubtful_face_and_serves_a_sure_one():
    landmarks = photo_face(face_gate.load_template())
    identity = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], np.float32)
    params = np.zeros(162, np.float32)
    params[161] = 1.0
    with pytest.raises(RequestError, match=r"^no human face found"):
        postprocess(params, landmarks, 0.999, identity, identity)
    assert postprocess(params, landmarks, 1.0, identity, identity).confidence == 1.0


# --- the served steps on real pictures ---------------------------------------------------------


@pytest.fixture(scope="module")
def pipeline():
    return FaceMeshPipeline()


def encoded(image: np.ndarray) -> bytes:
    ok, data = cv2.imencode(".png", np.ascontiguousarray(image[..., ::-1]))
    assert ok
    return data.tobytes()


@pytest.mark.parametrize("photo", corpus.human_photos(), ids=lambda photo: photo.name)
def test_every_human_face_of_the_corpus_is_served(pipeline, photo):
    data = encoded(photo.image)
    for index in range(photo.faces) if photo.faces > 1 else [None]:
        result = pipeline(data, index).result
        assert result.confidence >= CONFIG.min_presence


@pytest.mark.parametrize("photo", corpus.non_human_photos(), ids=lambda photo: photo.name)
def test_every_non_human_picture_is_refused(pipeline, photo):
    """Refused by the detector ("no face found"), by FaceMesh's presence ("no face found"), or
    by the gate ("no human face found ..., what is accepted")."""
    with pytest.raises(RequestError) as info:
        pipeline(encoded(photo.image))
    message = str(info.value)
    assert message.startswith(("no face found", "no human face found"))
    if message.startswith("no human face found"):
        assert ACCEPTED_WORDS in message


def test_the_puppy_facemesh_takes_for_a_face_is_refused_by_the_gate(pipeline):
    """The golden retriever close-up: detected (0.82) and FaceMesh presence 0.994, over
    min_presence; only the gate refuses it."""
    puppy = {photo.name: photo for photo in corpus.non_human_photos()}["dog_puppy_closeup"]
    lenient = FaceMeshPipeline(pipeline.predictor, post=PostprocessConfig(min_presence_log_odds=0))
    assert lenient(encoded(puppy.image)).result.confidence > CONFIG.min_presence
    with pytest.raises(RequestError, match=r"^no human face found in IMAGE: the face found does"):
        pipeline(encoded(puppy.image))


def tight_crop(image: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """(192, 192, 3) uint8: the landmark crop of a box 0.8 times the size the detector's gives."""
    x0, y0, x1, y1 = box
    side = 0.8 * LandmarkConfig().roi_scale * max(x1 - x0, y1 - y0)
    roi = RotatedRect((x0 + x1) / 2, (y0 + y1) / 2, side, side, 0.0)
    return warp_crop(image, roi, LandmarkConfig().input_size, cv2.BORDER_REPLICATE)


def test_tight_crops_of_the_puppy_are_refused_and_of_a_human_served(pipeline):
    """The measured worst case for animals: a crop tighter than the detector's."""
    puppy = {photo.name: photo for photo in corpus.non_human_photos()}["dog_puppy_closeup"]
    astronaut = corpus.human_photos()[0].image
    cases = ((puppy.image, (60, 30, 330, 330), False), (astronaut, corpus.ASTRONAUT_FACE, True))
    for image, box, human in cases:
        with torch.inference_mode():
            _, landmarks, presence = pipeline.predictor(
                torch.from_numpy(tight_crop(image, box)[None])
            )
        scores = face_gate.scores(landmarks[0].numpy(), float(presence[0, 0]))
        assert (scores.presence_log_odds >= CONFIG.min_presence_log_odds) == human, scores

"""face_reenactment's request handling around the networks: options, targets, paste-back."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from reenact.emotions import load_catalogue
from reenact.errors import RequestError
from reenact.morphable import EXPR_SLICE, N_PARAMS, ROT_SLICE, MorphableModel
from reenact.postprocess import PostprocessConfig
from reenact.preprocess import PreprocessConfig
from reenact.reenactment import (
    ImageEncoder,
    OptionParser,
    Reenactment,
    ReenactmentConfig,
    is_greyscale,
    paste_back,
    target_params,
    to_greyscale,
)
from tests import images


@pytest.fixture(scope="module")
def catalogue():
    return load_catalogue(MorphableModel.load().expression_names)


@pytest.fixture
def parser(catalogue):
    return OptionParser(ReenactmentConfig(), catalogue)


def strings(*names):
    return np.array([n.encode() for n in names], dtype=object)


def test_defaults_are_the_15_emotions_at_full_intensity(parser, catalogue):
    options = parser.parse()
    assert options.names == catalogue.default and len(options.names) == 15
    assert options.intensity == 1.0 and options.output_format == "jpeg"
    assert not options.paste_back and not options.head_pose_deg.any()


def test_configured_default_emotions(catalogue):
    parser = OptionParser(ReenactmentConfig(default_emotions="sad, Happy"), catalogue)
    assert parser.parse().names == ("sad", "happy")


def test_valid_options_are_read(parser):
    options = parser.parse(
        emotions=strings("sad", "angrily surprised"),
        intensity=np.array([0.5], np.float32),
        head_pose=np.array([10, -5, 2], np.float32),
        output_format=strings("PNG"),
        paste_back=np.array([True]),
        face_index=np.array([1], np.int32),
    )
    assert options.names == ("sad", "angrily surprised") and options.intensity == 0.5
    assert options.head_pose_deg.tolist() == [10, -5, 2]
    assert options.output_format == "png" and options.paste_back
    assert options.face_index == 1
    assert parser.parse().face_index is None


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"emotions": strings("joyful")}, "unknown emotion 'joyful'; accepted: neutral, happy"),
        ({"emotions": strings()}, "EMOTIONS is empty"),
        ({"emotions": strings(*["sad"] * 33)}, "the limit is 32"),
        ({"intensity": np.array([np.nan], np.float32)}, "INTENSITY must be a finite number"),
        ({"intensity": np.array([2.0], np.float32)}, "INTENSITY must be in [0, 1.5]"),
        ({"intensity": np.array([-0.1], np.float32)}, "INTENSITY must be in [0, 1.5]"),
        ({"head_pose": np.array([90, 0, 0], np.float32)}, "within ±30 yaw, ±20 pitch, ±45 roll"),
        ({"head_pose": np.array([0, 25, 0], np.float32)}, "got [0.0, 25.0, 0.0]"),
        ({"head_pose": np.array([1, 2], np.float32)}, "HEAD_POSE must be 3 numbers"),
        ({"expression": np.zeros((2, 54), np.float32)}, "EXPRESSION must be [K, 55]"),
        ({"expression": np.full((1, 55), 1.5, np.float32)}, "in [0, 1]"),
        ({"output_format": strings("gif")}, "OUTPUT_FORMAT must be one of jpeg, png"),
        ({"face_index": np.array([0, 1], np.int32)}, "FACE_INDEX must hold one integer"),
        ({"face_index": np.array([-1], np.int32)}, "FACE_INDEX must be 0 or more"),
        ({"emotions": strings("x" * 65)}, "EMOTIONS name 0 is 65 characters long; the limit is 64"),
        ({"emotions": np.array([b"\xff\xfe"], dtype=object)}, "EMOTIONS must be UTF-8 text"),
        ({"output_format": strings("gif" * 40)}, "got 'gifgif"),
        ({"paste_back": np.zeros(0, bool)}, "PASTE_BACK"),
        (
            {"emotions": strings("sad"), "expression": np.zeros((1, 55), np.float32)},
            "send EMOTIONS or EXPRESSION, not both",
        ),
    ],
)
def test_bad_options_say_what_is_accepted(parser, kwargs, words):
    with pytest.raises(RequestError) as info:
        parser.parse(**kwargs)
    assert words in str(info.value)


def test_raw_expression_rows_are_named_by_index(parser):
    options = parser.parse(expression=np.zeros((3, 55), np.float32))
    assert options.names == ("expression_0", "expression_1", "expression_2")
    assert options.expressions.shape == (3, 55)


def test_targets_replace_the_expression_and_turn_the_head():
    source = np.random.default_rng(0).uniform(0, 0.5, N_PARAMS).astype(np.float32)
    wanted = np.random.default_rng(1).uniform(0, 1, (4, 55)).astype(np.float32)
    full = target_params(source, wanted, 1.0, np.array([30.0, 0.0, 0.0]))
    np.testing.assert_allclose(full[:, EXPR_SLICE], wanted, atol=1e-6)
    np.testing.assert_allclose(full[:, ROT_SLICE][:, 1], source[ROT_SLICE][1] + np.radians(30))
    np.testing.assert_array_equal(full[:, :100], np.repeat(source[None, :100], 4, axis=0))
    none = target_params(source, wanted, 0.0, np.zeros(3))
    np.testing.assert_array_equal(none, np.repeat(source[None], 4, axis=0))
    half = target_params(source, wanted, 0.5, np.zeros(3))
    np.testing.assert_allclose(half[:, EXPR_SLICE], (source[EXPR_SLICE] + wanted) / 2, atol=1e-6)


def test_paste_back_changes_only_the_reenacted_region():
    rng = np.random.default_rng(2)
    photo = rng.integers(0, 255, (300, 400, 3), dtype=np.uint8)
    to_canvas = np.array([[2.0, 0.0, -200.0], [0.0, 2.0, -100.0]])  # canvas = photo 100..356 x
    canvas = cv2.warpAffine(photo, to_canvas, (256, 200))
    reenacted = canvas[None].copy()
    reenacted[0, 80:120, 100:150] = 255  # the "face" changed
    out = paste_back(photo, canvas, reenacted, to_canvas, ReenactmentConfig())[0]
    assert out.shape == photo.shape
    changed = np.any(out != photo, axis=-1)
    ys, xs = np.nonzero(changed)
    # canvas 100..150 x, 80..120 y is photo 150..175 x, 90..110 y, plus the feathered edge
    assert xs.min() >= 135 and xs.max() <= 190 and ys.min() >= 75 and ys.max() <= 125
    assert (out[95:105, 155:170] > 240).all()


@pytest.mark.parametrize("fmt", ["png", "jpeg"])
def test_encoder_writes_decodable_images(fmt):
    images = [np.full((40, 30, 3), (10 * k, 100, 200), np.uint8) for k in range(3)]
    encoded = ImageEncoder(ReenactmentConfig()).encode(images, fmt)
    for image, data in zip(images, encoded, strict=True):
        decoded = cv2.cvtColor(cv2.imdecode(np.frombuffer(data, np.uint8), 1), cv2.COLOR_BGR2RGB)
        assert np.abs(decoded.astype(int) - image).max() <= (0 if fmt == "png" else 3)
        assert data[:4] == (b"\x89PNG" if fmt == "png" else b"\xff\xd8\xff\xe0")


def not_called(*args):
    raise AssertionError("the request should have been refused before this step")


def faint_face(crop):
    """A mesh predictor that sees a face with presence 0.6."""
    return np.zeros(N_PARAMS, np.float32), np.zeros((468, 3), np.float32), 0.6


def test_the_steps_run_with_the_given_preprocess_and_postprocess_settings():
    photo = images.encode(images.astronaut(), "JPEG", quality=90)
    model = MorphableModel.load()
    small = Reenactment(
        ReenactmentConfig(), model, not_called, not_called, PreprocessConfig(max_pixels=100_000)
    )
    with pytest.raises(RequestError, match="pixels"):
        small(photo, small.options.parse())
    strict = Reenactment(
        ReenactmentConfig(), model, faint_face, not_called, None, PostprocessConfig(0.7)
    )
    with pytest.raises(RequestError, match="no face found"):
        strict(photo, strict.options.parse())


def test_greyscale_photos_are_recognised_and_outputs_kept_grey():
    astronaut = images.astronaut()
    grey = np.repeat(cv2.cvtColor(astronaut, cv2.COLOR_RGB2GRAY)[..., None], 3, axis=-1)
    assert not is_greyscale(astronaut)
    assert is_greyscale(grey)
    jpeg = cv2.imdecode(np.frombuffer(images.encode(grey, "JPEG", quality=80), np.uint8), 1)
    assert is_greyscale(jpeg)  # JPEG's chroma rounding stays within the allowed spread
    red_mouth = grey.copy()
    red_mouth[200:260, 200:300] = (150, 40, 40)  # a painted interior in colour
    out = to_greyscale(red_mouth[None])[0]
    assert (out.max(axis=-1) == out.min(axis=-1)).all()
    assert out[230, 250, 0] == round(0.299 * 150 + 0.587 * 40 + 0.114 * 40)
    np.testing.assert_array_equal(to_greyscale(grey[None])[0], grey)  # grey stays as it was

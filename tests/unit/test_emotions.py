"""The emotion catalogue against Du, Tao & Martinez, PNAS 2014, Table 1."""

from __future__ import annotations

import numpy as np
import pytest

from reenact.emotions import build_catalogue, load_catalogue
from reenact.errors import RequestError
from reenact.morphable import EXPR_SLICE, N_PARAMS, MorphableModel
from reenact.reenactment import target_params


@pytest.fixture(scope="module")
def catalogue():
    names = MorphableModel.load().expression_names
    return load_catalogue(names)


def weight(catalogue, emotion, shape):
    return float(catalogue.expression(emotion)[catalogue.expression_names.index(shape)])


def test_catalogue_has_21_categories_neutral_and_15_defaults(catalogue):
    assert len(catalogue.emotions) == 22 and "neutral" in catalogue.emotions
    assert len(catalogue.default) == 15 and len(set(catalogue.default)) == 15
    assert not catalogue.expression("neutral").any()


def test_every_emotion_is_distinct_and_in_range(catalogue):
    exprs = catalogue.expressions(list(catalogue.emotions))
    assert exprs.min() >= 0.0 and exprs.max() <= catalogue.max_weight + 1e-6  # float32 of 1.6
    ungained = [e.expression for e in catalogue.emotions.values() if e.gain == 1.0]
    assert ungained and np.max(ungained) <= 1.0  # only calibrated emotions extrapolate
    distances = np.linalg.norm(exprs[:, None] - exprs[None], axis=-1)
    np.fill_diagonal(distances, np.inf)
    assert distances.min() > 0.1  # hatred and appalled differ only in secondary AUs


@pytest.mark.parametrize(
    ("emotion", "on", "off"),
    [
        ("happy", ["mouthSmile_L", "mouthSmile_R"], ["mouthFrown_L", "browDown_L"]),
        ("sad", ["browDown_R", "mouthFrown_R"], ["mouthSmile_L", "jawOpen"]),
        ("surprised", ["browInnerUp_L", "browOuterUp_R", "mouthLowerDown_L"], ["browDown_L"]),
        (  # calibrated: bared teeth (upper lip up, lower lip down, lips stretched), no press
            "angry",
            ["browDown_L", "eyeSquint_R", "mouthUpperUp_L", "mouthLowerDown_R", "mouthStretch_L"],
            ["mouthSmile_R", "mouthPress_L"],
        ),
        ("disgusted", ["noseSneer_L", "mouthUpperUp_R", "mouthShrugLower"], ["mouthSmile_L"]),
        (
            "fearful",
            ["browInnerUp_R", "browDown_L", "eyeWide_R", "mouthStretch_L"],
            ["mouthSmile_L", "eyeSquint_L"],
        ),
    ],
)
def test_basic_emotions_use_their_action_units(catalogue, emotion, on, off):
    for shape in on:
        assert weight(catalogue, emotion, shape) >= 0.5, shape
    for shape in off:
        assert weight(catalogue, emotion, shape) == 0.0, shape


def test_secondary_units_are_weaker(catalogue):
    assert (
        0.0
        < weight(catalogue, "happy", "cheekRaiser_L")
        < weight(catalogue, "happy", "mouthSmile_L")
    )


def test_names_are_forgiving_about_case_and_separators_but_not_spelling(catalogue):
    assert catalogue.get("Happily_Surprised").name == "happily surprised"
    with pytest.raises(RequestError, match="unknown emotion 'joyful'; accepted: neutral, happy"):
        catalogue.get("joyful")


RAW = {
    "action_units": {
        "4": {"blendshapes": {"browDown_L": 1.0}},
        "15": {"blendshapes": {"mouthFrown_L": 1.0}},
        "1": {"blendshapes": {"browInnerUp_L": 1.0}},
    },
    "intensity": {"primary": 1.0, "secondary": 0.3},
    "max_weight": 1.5,
    "calibration": {"sad": {"gain": 2.0}, "plain": {"action_units": {"1": 0.5, "15": 0.2}}},
    "emotions": {
        "sad": {"primary": [4, 15], "secondary": [1]},
        "plain": {"primary": [4], "secondary": [1]},
    },
    "default": ["sad"],
}
NAMES = ("browDown_L", "mouthFrown_L", "browInnerUp_L", "jawOpen")


def test_gain_scales_an_emotion_and_max_weight_caps_it():
    catalogue = build_catalogue(RAW, NAMES)
    np.testing.assert_allclose(catalogue.expression("sad"), [1.5, 1.5, 0.6, 0.0])  # 2 x, capped
    raw = {**RAW, "emotions": {"sad": {"primary": [4, 4], "secondary": []}}, "default": []}
    raw["calibration"] = {"sad": {"gain": 2.0}}
    summed = build_catalogue(raw, NAMES)
    np.testing.assert_allclose(summed.expression("sad")[:1], [1.5])  # 1 x 2, capped
    np.testing.assert_allclose(catalogue.expression("plain"), [1.0, 0.2, 0.5, 0.0])  # strengths
    assert catalogue.max_weight == 1.5 and catalogue.get("sad").gain == 2.0
    with pytest.raises(ValueError, match="calibration for emotions not in the catalogue"):
        build_catalogue({**RAW, "calibration": {"joyful": {"gain": 2.0}}}, NAMES)


def test_calibrated_targets_extrapolate_only_as_far_as_asked():
    """INTENSITY 0 keeps the source's own expression, 1 gives the emotion at full (calibrated)
    strength even above 1, in between is linear; the cap is the catalogue's max_weight."""
    source = np.zeros(N_PARAMS, np.float32)
    source[EXPR_SLICE.start + 2] = 0.4  # a face that already shows some of it
    wanted = np.zeros((1, 55), np.float32)
    wanted[0, :2] = (1.5, 0.2)
    for intensity, expected in ((0.0, (0.0, 0.0, 0.4)), (1.0, (1.5, 0.2, 0.0))):
        targets = target_params(source, wanted, intensity, np.zeros(3), max_weight=1.5)
        np.testing.assert_allclose(targets[0, EXPR_SLICE][:3], expected, atol=1e-6)
    half = target_params(source, wanted, 0.5, np.zeros(3), max_weight=1.5)
    np.testing.assert_allclose(half[0, EXPR_SLICE][:3], (0.75, 0.1, 0.2), atol=1e-6)
    over = target_params(source, wanted, 1.5, np.zeros(3), max_weight=1.5)
    assert over[0, EXPR_SLICE.start] == pytest.approx(1.5)  # capped, not 2.25
    capped = target_params(source, wanted, 1.0, np.zeros(3))  # default cap 1
    assert capped[0, EXPR_SLICE.start] == pytest.approx(1.0)

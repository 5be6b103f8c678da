"""The emotion catalogue against Du, Tao & Martinez, PNAS 2014, Table 1."""

from __future__ import annotations

import numpy as np
import pytest

from reenact.emotions import load_catalogue
from reenact.errors import RequestError
from reenact.morphable import MorphableModel


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
    assert exprs.min() >= 0.0 and exprs.max() <= 1.0
    distances = np.linalg.norm(exprs[:, None] - exprs[None], axis=-1)
    np.fill_diagonal(distances, np.inf)
    assert distances.min() > 0.1  # hatred and appalled differ only in secondary AUs


@pytest.mark.parametrize(
    ("emotion", "on", "off"),
    [
        ("happy", ["mouthSmile_L", "mouthSmile_R"], ["mouthFrown_L", "browDown_L"]),
        ("sad", ["browDown_R", "mouthFrown_R"], ["mouthSmile_L", "jawOpen"]),
        ("surprised", ["browInnerUp_L", "browOuterUp_R", "mouthLowerDown_L"], ["browDown_L"]),
        ("angry", ["browDown_L", "eyeSquint_R", "mouthPress_L"], ["mouthSmile_R"]),
        ("disgusted", ["noseSneer_L", "mouthUpperUp_R", "mouthShrugLower"], ["mouthSmile_L"]),
        ("fearful", ["browInnerUp_R", "browDown_L", "mouthStretch_L"], ["mouthSmile_L"]),
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

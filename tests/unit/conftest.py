"""Fixtures shared by the unit tests: the morphable model and the geometric renderer, built
once per test module."""

from __future__ import annotations

import pytest

from reenact.geometric import ReenactorRenderer
from reenact.morphable import MorphableModel


@pytest.fixture(scope="module")
def model() -> MorphableModel:
    return MorphableModel.load()


@pytest.fixture(scope="module")
def renderer(model) -> ReenactorRenderer:
    return ReenactorRenderer(model)

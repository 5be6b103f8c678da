"""The emotion catalogue: 21 CFEE categories plus neutral as ICT expression weights.

Each emotion is its prototypical action units (``data/emotions.json``: Du, Tao & Martinez, PNAS
2014, Table 1): primary AUs at full intensity, secondary ones (seen in some subjects) weaker; each
AU maps to ICT blendshapes.
The JSON's ``calibration`` adjusts an emotion measured as weak or misread (docs/emotions.md):
``action_units`` replaces the strength of named action units (or adds units, 0 removes one),
``gain`` multiplies the result. Weights add up per blendshape and are clipped to [0, 1], then
multiplied by the gain and clipped to [0, ``max_weight``] (above 1 a blendshape is
extrapolated).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources

import numpy as np

from reenact.errors import RequestError


@dataclass(frozen=True)
class Emotion:
    name: str
    primary: tuple[int, ...]
    secondary: tuple[int, ...]
    expression: np.ndarray  # (55,) float32 ICT expression weights in [0, max_weight]
    gain: float = 1.0  # the calibrated gain the weights were multiplied by


@dataclass(frozen=True)
class EmotionCatalogue:
    emotions: dict[str, Emotion]
    default: tuple[str, ...]
    expression_names: tuple[str, ...]
    max_weight: float = 1.0  # the largest expression weight of any emotion

    def expression(self, name: str) -> np.ndarray:
        """(55,) float32 expression weights of ``name``; RequestError for an unknown name."""
        return self.get(name).expression

    def get(self, name: str) -> Emotion:
        key = " ".join(name.strip().lower().replace("_", " ").split())
        if key not in self.emotions:
            raise RequestError(f"unknown emotion {name!r}; accepted: {', '.join(self.emotions)}")
        return self.emotions[key]

    def expressions(self, names: list[str] | tuple[str, ...]) -> np.ndarray:
        """(K, 55) float32 expression weights of ``names`` in order."""
        return np.stack([self.expression(n) for n in names]).astype(np.float32)


def _au_vector(spec: dict, expression_names: tuple[str, ...]) -> np.ndarray:
    vec = np.zeros(len(expression_names), np.float32)
    for shape, weight in spec["blendshapes"].items():
        vec[expression_names.index(shape)] += weight
    return vec


def build_catalogue(raw: dict, expression_names: tuple[str, ...]) -> EmotionCatalogue:
    """Make the catalogue from the JSON structure of ``data/emotions.json``."""
    aus = {int(k): _au_vector(v, expression_names) for k, v in raw["action_units"].items()}
    strength = raw["intensity"]
    calibration = raw.get("calibration", {})
    unknown = sorted(set(calibration) - set(raw["emotions"]))
    if unknown:
        raise ValueError(f"calibration for emotions not in the catalogue: {unknown}")
    max_weight = float(raw.get("max_weight", 1.0))
    emotions = {}
    for name, spec in raw["emotions"].items():
        calibrated = calibration.get(name, {})
        units = {au: strength["primary"] for au in spec["primary"]}
        for au in spec["secondary"]:
            units.setdefault(au, strength["secondary"])
        units.update({int(au): float(w) for au, w in calibrated.get("action_units", {}).items()})
        weights = np.zeros(len(expression_names), np.float32)
        for au, unit_strength in units.items():
            weights += unit_strength * aus[au]
        gain = float(calibrated.get("gain", 1.0))
        emotions[name] = Emotion(
            name=name,
            primary=tuple(spec["primary"]),
            secondary=tuple(spec["secondary"]),
            expression=np.clip(gain * np.clip(weights, 0.0, 1.0), 0.0, max_weight).astype(
                np.float32
            ),
            gain=gain,
        )
    default = tuple(raw["default"])
    unknown = sorted(set(default) - set(emotions))
    if unknown:
        raise ValueError(f"default emotions not in the catalogue: {unknown}")
    return EmotionCatalogue(emotions, default, expression_names, max_weight)


@cache
def load_catalogue(expression_names: tuple[str, ...]) -> EmotionCatalogue:
    """The catalogue shipped with the package, for a model with ``expression_names``."""
    text = resources.files("reenact").joinpath("data/emotions.json").read_text()
    return build_catalogue(json.loads(text), expression_names)

"""Face identity embeddings: dlib's ResNet face descriptor, for measuring identity drift.

For ``make eval-emotions`` (docs/evaluation.md); never used by the served models. dlib (Boost
Software License) comes from the PyPI wheel ``dlib-bin``; its models from the PyPI package
``face-recognition-models`` (package data, nothing downloaded at run time):

- ``shape_predictor_5_face_landmarks.dat``: 5 points (eye corners, base of the nose) inside a
  face box, the alignment of the descriptor's face chip (150x150, 25 % padding);
- ``dlib_face_recognition_resnet_model_v1.dat``: a 29-layer ResNet giving a 128-d descriptor;
  two faces of the same person lie within Euclidean distance 0.6 (:data:`SAME_PERSON_DISTANCE`,
  dlib's threshold: 99.38 % on the LFW benchmark).

Both model files are in the public domain (CC0, Davis King).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from reenact.assets import AssetNotFoundError

SAME_PERSON_DISTANCE = 0.6
"""dlib's threshold: descriptors nearer than this are taken for the same person."""

SHAPE_PREDICTOR_FILE = "shape_predictor_5_face_landmarks.dat"
DESCRIPTOR_FILE = "dlib_face_recognition_resnet_model_v1.dat"


def models_dir() -> Path:
    """The ``models`` folder of the installed ``face_recognition_models`` package (found without
    importing it: its ``__init__`` needs ``pkg_resources``)."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise AssetNotFoundError(
            "the face_recognition_models package is missing: pip install -e '.[dev]'"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "models"


@dataclass(frozen=True)
class EmbedderConfig:
    chip_size: int = 150  # dlib's face chip, pixels
    chip_padding: float = 0.25  # dlib's default
    jitters: int = 0  # extra randomly jittered chips averaged in (0: deterministic)


class FaceEmbedder:
    """RGB image + face box → (128,) float32 dlib face descriptor."""

    def __init__(self, folder: Path | None = None, config: EmbedderConfig = EmbedderConfig()):
        import dlib  # dev dependency only: the served models never embed faces

        folder = folder or models_dir()
        self.config = config
        self._dlib: Any = dlib
        self.shape_predictor = dlib.shape_predictor(str(folder / SHAPE_PREDICTOR_FILE))
        self.descriptor = dlib.face_recognition_model_v1(str(folder / DESCRIPTOR_FILE))

    def landmarks(self, image: np.ndarray, box: np.ndarray | tuple[float, ...]) -> np.ndarray:
        """(5, 2) float32 x, y: dlib's 5 points of the face in ``box: (4,) x0, y0, x1, y1``."""
        shape = self.shape_predictor(_checked(image), self._rectangle(box))
        return np.array([[p.x, p.y] for p in shape.parts()], np.float32)

    def embed(self, image: np.ndarray, box: np.ndarray | tuple[float, ...]) -> np.ndarray:
        """(128,) float32 descriptor of the face in ``box`` of ``image: (H, W, 3) uint8 RGB``."""
        image = _checked(image)
        shape = self.shape_predictor(image, self._rectangle(box))
        chip = self._dlib.get_face_chip(
            image, shape, size=self.config.chip_size, padding=self.config.chip_padding
        )
        descriptor = self.descriptor.compute_face_descriptor(chip, self.config.jitters)
        return np.asarray(descriptor, np.float32)

    def distance(
        self,
        image_a: np.ndarray,
        box_a: np.ndarray | tuple[float, ...],
        image_b: np.ndarray,
        box_b: np.ndarray | tuple[float, ...],
    ) -> float:
        """Euclidean distance between the two faces' descriptors (< 0.6: same person)."""
        return descriptor_distance(self.embed(image_a, box_a), self.embed(image_b, box_b))

    def _rectangle(self, box: np.ndarray | tuple[float, ...]) -> Any:
        x0, y0, x1, y1 = (round(float(v)) for v in box)
        if x1 <= x0 or y1 <= y0:
            raise ValueError(f"empty face box {tuple(box)}")
        return self._dlib.rectangle(x0, y0, x1, y1)


def descriptor_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Euclidean distance of two (128,) descriptors."""
    return float(np.linalg.norm(np.asarray(a, np.float64) - np.asarray(b, np.float64)))


def _checked(image: np.ndarray) -> np.ndarray:
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) uint8 RGB image, got {image.shape} {image.dtype}")
    return np.ascontiguousarray(image)

"""The served pipelines run in one process, for tests, tools and benchmarks.

Same code as the served models (face_mesh's steps; face_reenactment's :class:`Reenactment` with
the TorchScript networks called directly instead of through BLS), so served results can be
compared with these to float tolerance, and the serving overhead measured.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from reenact.assets import REPO_ROOT
from reenact.morphable import MorphableModel
from reenact.postprocess import FaceMeshResult, PostprocessConfig, postprocess
from reenact.preprocess import FacePreprocessor, PreprocessConfig, Preprocessed
from reenact.reenactment import Reenactment, ReenactmentConfig

MESH_PREDICTOR_FILE = REPO_ROOT / "model_repository" / "mesh_predictor" / "1" / "model.pt"


@dataclass(frozen=True)
class FaceMeshOutput:
    preprocessed: Preprocessed
    result: FaceMeshResult


class FaceMeshPipeline:
    def __init__(
        self,
        predictor: torch.nn.Module | None = None,
        preprocess: PreprocessConfig | None = None,
        post: PostprocessConfig | None = None,
        predictor_file: Path = MESH_PREDICTOR_FILE,
    ) -> None:
        self.preprocess = FacePreprocessor(preprocess)
        self.predictor = predictor or torch.jit.load(str(predictor_file), map_location="cpu")
        self.post = post or PostprocessConfig()

    def __call__(self, data: bytes, face_index: int | None = None) -> FaceMeshOutput:
        pre = self.preprocess(data, face_index)
        with torch.inference_mode():
            params, landmarks, presence = self.predictor(torch.from_numpy(pre.landmark_crop[None]))
        result = postprocess(
            params[0].numpy(),
            landmarks[0].numpy(),
            float(presence[0, 0]),
            pre.crop_to_image,
            pre.image_to_canvas,
            self.post,
        )
        return FaceMeshOutput(pre, result)


def as_arrays(output: FaceMeshOutput) -> dict[str, np.ndarray]:
    """The face_mesh ensemble's output tensors, by name."""
    pre, res = output.preprocessed, output.result
    return {
        "SOURCE_PARAMS": res.source_params,
        "IMAGE_PARAMS": res.image_params,
        "IMAGE_LANDMARKS": res.image_landmarks,
        "CONFIDENCE": np.array([res.confidence], np.float32),
        "FACE_BOX": pre.face_box,
        "CANVAS": pre.canvas,
        "IMAGE_TO_CANVAS": pre.image_to_canvas,
        "DECODED_IMAGE": pre.image,
    }


REENACTOR_FILE = REPO_ROOT / "model_repository" / "reenactor" / "1" / "model.pt"


def local_reenactment(
    config: ReenactmentConfig | None = None,
    predictor_file: Path = MESH_PREDICTOR_FILE,
    reenactor_file: Path = REENACTOR_FILE,
) -> Reenactment:
    """face_reenactment's request in this process, with the exported TorchScript networks."""
    predictor = torch.jit.load(str(predictor_file), map_location="cpu")
    reenactor = torch.jit.load(str(reenactor_file), map_location="cpu")

    def predict_mesh(crop: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
        with torch.inference_mode():
            params, landmarks, presence = predictor(torch.from_numpy(crop))
        return params[0].numpy(), landmarks[0].numpy(), float(presence[0, 0])

    def reenact(canvas, source_render, target_render, targets) -> np.ndarray:
        with torch.inference_mode():
            tensors = [torch.from_numpy(a) for a in (canvas, source_render, target_render, targets)]
            return reenactor(*tensors).numpy()

    return Reenactment(config or ReenactmentConfig(), MorphableModel.load(), predict_mesh, reenact)

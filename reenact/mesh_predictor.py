"""The default mesh predictor: FaceMesh landmarks + closed-form 3DMM fit, one TorchScript module.

Input: the landmark crop (B, 192, 192, 3) uint8 RGB that ``face_preprocess`` cuts out (MediaPipe's
rotated face crop). Outputs, all in that crop's pixels (x right, y down, z larger = nearer):

- ``params``: (B, 162) float32 3DMM parameters (layout of :mod:`reenact.morphable`);
- ``landmarks``: (B, 468, 3) float32 FaceMesh points, z flipped to larger = nearer;
- ``presence``: (B, 1) float32 FaceMesh's face-presence probability.

``export/build_mesh_predictor.py`` scripts it into ``model_repository/mesh_predictor/1/model.pt``.
It is two parts, each usable alone: :class:`LandmarkNetwork` (crop → landmarks, presence; exported
to ONNX by ``export/export_onnx.py``) and :class:`LandmarkFit` (landmarks → params; SVD and
Cholesky, which ONNX cannot express, so TorchScript only).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn

from reenact.correspondence import Correspondence
from reenact.fit import FitConfig, LandmarkFitter
from reenact.landmarks import facemesh, mediapipe_dir
from reenact.landmarks.facemesh import FaceMesh
from reenact.morphable import MorphableModel

CROP_SIZE = facemesh.INPUT_SIZE


class LandmarkNetwork(nn.Module):
    """Landmark crop → (landmarks, presence): FaceMesh alone, the part ONNX can express."""

    def __init__(self, mesh: FaceMesh) -> None:
        super().__init__()
        self.mesh = mesh.eval()
        self.register_buffer("flip_z", torch.tensor([1.0, 1.0, -1.0]))

    def forward(self, crop: Tensor) -> tuple[Tensor, Tensor]:
        """crop: (B, 192, 192, 3) uint8. Returns landmarks (B, 468, 3) and presence (B, 1),
        float32."""
        image = crop.permute(0, 3, 1, 2).to(torch.float32) / 255.0
        raw, face_flag = self.mesh(image)
        landmarks = raw * self.flip_z  # MediaPipe's z is negative towards the camera
        return landmarks, torch.sigmoid(face_flag)


class LandmarkFit(nn.Module):
    """Landmarks → 3DMM parameters: the closed-form fit (SVD, Cholesky: no ONNX operators)."""

    def __init__(self, fitter: LandmarkFitter) -> None:
        super().__init__()
        self.fitter = fitter

    def forward(self, landmarks: Tensor) -> Tensor:
        """landmarks: (B, 468, 3) float32 crop pixels. Returns params (B, 162) float32."""
        return self.fitter(landmarks).params


class MeshPredictor(nn.Module):
    """Landmark crop → (params, landmarks, presence); see the module docstring."""

    def __init__(self, mesh: FaceMesh, fitter: LandmarkFitter) -> None:
        super().__init__()
        self.network = LandmarkNetwork(mesh)
        self.fit = LandmarkFit(fitter)

    def forward(self, crop: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """crop: (B, 192, 192, 3) uint8. Returns params (B, 162), landmarks (B, 468, 3),
        presence (B, 1), all float32."""
        landmarks, presence = self.network(crop)
        return self.fit(landmarks), landmarks, presence


def build(
    model: MorphableModel | None = None,
    correspondence: Correspondence | None = None,
    assets: Path | None = None,
    config: FitConfig | None = None,
) -> MeshPredictor:
    """The predictor from the converted FaceMesh weights and the committed correspondence."""
    model = model or MorphableModel.load()
    table = correspondence or Correspondence.load()
    mesh = FaceMesh.load((assets or mediapipe_dir()) / facemesh.WEIGHTS_FILE)
    fitter = LandmarkFitter(model, table.tri_vertices, table.barycentric, config)
    return MeshPredictor(mesh, fitter).eval()

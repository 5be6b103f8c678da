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
from reenact.neural.config import PREDICTOR_WIDTHS, PredictorTrainConfig, load_config
from reenact.neural.predictor import RegressionMeshPredictor

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


class RegressedMeshPredictor(nn.Module):
    """The mesh predictor with a trained regression network for the parameters
    (:class:`reenact.neural.predictor.RegressionMeshPredictor`, one forward pass instead of the
    landmark fit); FaceMesh still gives the landmarks and the presence that the face gate reads.
    Same tensors as :class:`MeshPredictor`."""

    def __init__(self, mesh: FaceMesh, regressor: nn.Module) -> None:
        super().__init__()
        self.network = LandmarkNetwork(mesh)
        self.regressor = regressor

    def forward(self, crop: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """crop: (B, 192, 192, 3) uint8. Returns params (B, 162), landmarks (B, 468, 3),
        presence (B, 1), all float32."""
        landmarks, presence = self.network(crop)
        return self.regressor(crop), landmarks, presence


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


def build_regressed(run: Path, assets: Path | None = None) -> RegressedMeshPredictor:
    """The predictor whose parameters come from a trained regression network: ``run`` is a
    ``python -m reenact train predictor`` run folder (config.json, last.pt) or its last.pt."""
    folder = run if run.is_dir() else run.parent
    weights = run if run.is_file() else folder / "last.pt"
    config = load_config(PredictorTrainConfig, folder / "config.json")
    if config.crop_size != CROP_SIZE:
        raise ValueError(
            f"{run}: trained on {config.crop_size} px crops, served crops are {CROP_SIZE}"
        )
    regressor = RegressionMeshPredictor(PREDICTOR_WIDTHS[config.width], config.crop_size)
    states = torch.load(weights, map_location="cpu", weights_only=True)
    regressor.load_state_dict(states["network"])
    # traced (the BiFPN's fusion reads a Python constant that scripting refuses); the batch
    # stays dynamic, and the whole predictor can then be scripted around it
    crop = torch.zeros(2, CROP_SIZE, CROP_SIZE, 3, dtype=torch.uint8)
    with torch.no_grad():
        traced = torch.jit.trace(regressor.eval(), crop)
    mesh = FaceMesh.load((assets or mediapipe_dir()) / facemesh.WEIGHTS_FILE)
    return RegressedMeshPredictor(mesh, traced).eval()

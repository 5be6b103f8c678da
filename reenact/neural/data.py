"""Training data: the dataset format, its preparation by the product's own pipeline, and the
batch sources of the two trainings.

Input: a folder of face photos grouped by person (or video), one sub-folder each::

    photos/
      person_a/  0001.jpg 0002.jpg …   (photos of one person, or frames of one video)
      person_b/  …
      loose.jpg                        (a file at the top level is a person of its own)

``python -m reenact prepare photos/ data/`` (:func:`prepare_dataset`) runs every photo through
:class:`reenact.preprocess.FacePreprocessor` (detection, 512 x 384 canvas, landmark crop) and the
mesh predictor (default: the landmark-fit TorchScript ``model_repository/mesh_predictor/1/
model.pt``; its parameters are the regression predictor's distillation targets), renders the
PNCC and the masks, and writes one ``.npz`` per photo (``np.savez_compressed``; read with
``allow_pickle=False``) plus ``index.json``::

    data/index.json       {"format": 1, "height": 512, "width": 384, "crop_size": 192,
                           "samples": [{"file": "person_a/0001.npz", "person": "person_a"}, …],
                           "skipped": [{"file": …, "reason": …}, …]}
    data/person_a/0001.npz
      canvas          (512, 384, 3) uint8   the canvas RGB
      pncc            (512, 384, 3) uint8   PNCC (reenact.pncc's code) x 255, 0 off the head
      face_mask       (512, 384) uint8      1 where the 3DMM head is drawn
      mouth_mask      (512, 384) uint8      1 on the lips and the mouth interior
      params          (162,) float32        3DMM parameters, canvas pixels
      landmark_crop   (192, 192, 3) uint8   the mesh predictor's input
      crop_params     (162,) float32        3DMM parameters, crop pixels (teacher output)
      crop_landmarks  (468, 3) float32      FaceMesh landmarks, crop pixels (teacher output)

Photos the service would refuse (no face, not human) are listed under "skipped".
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import Tensor

import pnccrender
from reenact import face_geometry
from reenact.errors import RequestError
from reenact.geometric import ReenactorRenderer
from reenact.head_render import PIXEL_CENTRE
from reenact.morphable import MorphableModel
from reenact.pncc import FACE_VERTEX_COUNT, ncc
from reenact.postprocess import postprocess
from reenact.preprocess import FacePreprocessor, PreprocessConfig

LOGGER = logging.getLogger(__name__)
FORMAT_VERSION = 1
INDEX_FILE = "index.json"
PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
OUTER_LIP = slice(48, 60)  # Multi-PIE 68 landmark indices of the outer lip contour
PNCC, MOUTH, COVERAGE = slice(0, 3), 3, 4


class TrainingRenderer:
    """Renders PNCC, mouth mask and coverage of 3DMM parameter sets in one pnccrender call.

    Draws the triangles of :class:`reenact.geometric.ReenactorRenderer` (face, head, neck, eyes,
    mouth interior). The mouth mask is the mouth interior (teeth, gums, tongue, mouth socket)
    and the lips: face vertices inside the outer-lip landmark contour of the neutral mesh.
    """

    def __init__(self, model: MorphableModel) -> None:
        geometric = ReenactorRenderer(model)
        self.model = model
        self.vertex_ids = geometric.vertex_ids
        self.triangles = geometric.triangles
        lip_outline = model.neutral[model.landmarks_68[OUTER_LIP], :2].astype(np.float32)
        points = model.neutral[self.vertex_ids, :2]
        lips = np.array(
            [cv2.pointPolygonTest(lip_outline, (float(x), float(y)), False) >= 0 for x, y in points]
        )
        lips &= self.vertex_ids < FACE_VERTEX_COUNT
        attributes = np.zeros((self.vertex_ids.size, 5), np.float32)
        attributes[:, PNCC] = ncc(model)[self.vertex_ids]
        attributes[:, MOUTH] = (lips | geometric.is_mouth).astype(np.float32)
        attributes[:, COVERAGE] = 1.0
        self.attributes = attributes

    def render(self, params: np.ndarray, height: int, width: int) -> np.ndarray:
        """params: (B, 162) float32 in pixels of an H x W image → (B, H, W, 5) float32:
        PNCC (3, in [0, 1]), mouth mask, coverage; 0 where nothing is drawn."""
        vertices = self.model.decode(params, self.vertex_ids)
        vertices[..., :2] += PIXEL_CENTRE
        return pnccrender.render(vertices, self.triangles, self.attributes, height, width).image


Teacher = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray, float]]
"""landmark crop (1, 192, 192, 3) uint8 → crop params (162,), crop landmarks (468, 3), presence."""


def torchscript_teacher(path: Path) -> Teacher:
    """The landmark-fit mesh predictor (TorchScript file) as a :data:`Teacher`."""
    module = torch.jit.load(str(path), map_location="cpu")

    def run(crop: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
        with torch.inference_mode():
            params, landmarks, presence = module(torch.from_numpy(crop))
        return params[0].numpy(), landmarks[0].numpy(), float(presence[0, 0])

    return run


def list_photos(root: Path) -> list[tuple[str, Path]]:
    """(person, photo path) pairs, sorted: sub-folders are people, top-level files their own."""
    found: list[tuple[str, Path]] = []
    for entry in sorted(root.iterdir()):
        if entry.is_dir():
            found += [
                (entry.name, p)
                for p in sorted(entry.iterdir())
                if p.suffix.lower() in PHOTO_SUFFIXES
            ]
        elif entry.suffix.lower() in PHOTO_SUFFIXES:
            found.append((entry.stem, entry))
    return found


@dataclass
class Preparer:
    """Turns encoded photos into dataset samples (:func:`prepare_sample`)."""

    teacher: Teacher
    preprocessor: FacePreprocessor
    renderer: TrainingRenderer

    @classmethod
    def default(cls, teacher_file: Path, preprocess: PreprocessConfig | None = None) -> Preparer:
        return cls(
            torchscript_teacher(teacher_file),
            FacePreprocessor(preprocess),
            TrainingRenderer(MorphableModel.load()),
        )

    def __call__(self, data: bytes) -> dict[str, np.ndarray]:
        """One photo's sample arrays (module docstring). Raises RequestError for a photo the
        service refuses."""
        pre = self.preprocessor(data)
        crop_params, crop_landmarks, presence = self.teacher(pre.landmark_crop[None])
        result = postprocess(
            crop_params, crop_landmarks, presence, pre.crop_to_image, pre.image_to_canvas
        )
        height, width = pre.canvas.shape[:2]
        render = self.renderer.render(result.source_params[None], height, width)[0]
        return {
            "canvas": pre.canvas,
            "pncc": np.rint(render[..., PNCC] * 255).astype(np.uint8),
            "face_mask": (render[..., COVERAGE] > 0.5).astype(np.uint8),
            "mouth_mask": (render[..., MOUTH] > 0.5).astype(np.uint8),
            "params": result.source_params.astype(np.float32),
            "landmark_crop": pre.landmark_crop,
            "crop_params": np.asarray(crop_params, np.float32),
            "crop_landmarks": np.asarray(crop_landmarks, np.float32),
        }


def prepare_dataset(photos: Path, out: Path, preparer: Preparer) -> dict:
    """Prepares every photo under ``photos`` into ``out`` (format in the module docstring).
    Returns the index written to ``out/index.json``."""
    samples: list[dict[str, str]] = []
    skipped: list[dict[str, str]] = []
    for person, path in list_photos(photos):
        relative = f"{person}/{path.stem}.npz"
        try:
            arrays = preparer(path.read_bytes())
        except RequestError as exc:
            skipped.append({"file": str(path), "reason": str(exc)})
            LOGGER.warning("skipped %s: %s", path, exc)
            continue
        (out / person).mkdir(parents=True, exist_ok=True)
        np.savez_compressed(out / relative, **arrays)
        samples.append({"file": relative, "person": person})
    height, width = (512, 384)
    if samples:
        height, width = np.load(out / samples[0]["file"], allow_pickle=False)["canvas"].shape[:2]
    index = {
        "format": FORMAT_VERSION,
        "height": int(height),
        "width": int(width),
        "crop_size": preparer.preprocessor.landmark_config.input_size,
        "samples": samples,
        "skipped": skipped,
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / INDEX_FILE).write_text(json.dumps(index, indent=1) + "\n")
    return index


def load_index(root: Path) -> dict:
    index = json.loads((root / INDEX_FILE).read_text())
    if index.get("format") != FORMAT_VERSION:
        raise ValueError(f"{root / INDEX_FILE}: dataset format {index.get('format')} is not 1")
    if not index["samples"]:
        raise ValueError(f"{root}: the dataset has no samples")
    return index


def load_sample(root: Path, relative: str) -> dict[str, np.ndarray]:
    with np.load(root / relative, allow_pickle=False) as arrays:
        return {key: arrays[key] for key in arrays.files}


def resize_params(params: np.ndarray, factor_y: float, factor_x: float) -> np.ndarray:
    """(…, 162) parameters of an image resized by the given factors (pixel centres at integers);
    the factors must be equal up to rounding (canvases keep their aspect)."""
    factor = (factor_x + factor_y) / 2
    shift = 0.5 * factor - 0.5
    affine = np.array([[factor, 0.0, shift], [0.0, factor, shift]])
    flat = np.asarray(params, np.float32).reshape(-1, params.shape[-1])
    return face_geometry.transform_params(flat, affine).reshape(params.shape)


def resized_sample(sample: dict[str, np.ndarray], height: int, width: int) -> dict[str, np.ndarray]:
    """The reenactor's arrays of a sample at H x W: canvas (area), PNCC and masks (nearest: no
    blending into the black background), params moved to the new pixels."""
    h0, w0 = sample["canvas"].shape[:2]
    if (h0, w0) == (height, width):
        return sample
    out = dict(sample)
    out["canvas"] = cv2.resize(sample["canvas"], (width, height), interpolation=cv2.INTER_AREA)
    for key in ("pncc", "face_mask", "mouth_mask"):
        out[key] = cv2.resize(sample[key], (width, height), interpolation=cv2.INTER_NEAREST)
    out["params"] = resize_params(sample["params"], height / h0, width / w0)
    return out


def image_tensor(image: np.ndarray) -> Tensor:
    """(H, W, 3) uint8 → (3, H, W) float32 in [-1, 1]."""
    return torch.from_numpy(image).permute(2, 0, 1).float() / 127.5 - 1.0


class ReenactorBatches(torch.utils.data.Dataset):
    """Item ``step`` is the batch of that training step (deterministic in seed and step, so a
    resumed run sees the same batches): ``batch_size`` (source, driving) pairs of one person
    each (self-reenactment: the driving photo is the ground truth), at ``height`` x ``width``.

    A batch: source, target (B, 3, H, W) [-1, 1]; source_pncc, target_pncc (B, 3, H, W) [0, 1];
    target_params, source_params (B, 162) (H x W pixels); face_mask, mouth_mask (B, 1, H, W);
    source_canvas (B, H0, W0, 3) uint8 and source_params_canvas, target_params_canvas (B, 162)
    at the stored canvas size (the hybrid mode's geometric warp runs there).
    """

    def __init__(
        self, root: Path, height: int, width: int, batch_size: int, seed: int, cache: bool = True
    ) -> None:
        index = load_index(root)
        self.root, self.height, self.width = root, height, width
        self.batch_size, self.seed, self.cache = batch_size, seed, cache
        self.files = [s["file"] for s in index["samples"]]
        people = sorted({s["person"] for s in index["samples"]})
        self.by_person = [
            [k for k, s in enumerate(index["samples"]) if s["person"] == p] for p in people
        ]
        self._cache: dict[int, tuple[dict[str, np.ndarray], dict[str, np.ndarray]]] = {}

    def __len__(self) -> int:
        return 2**62

    def sample(self, k: int) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """(stored arrays, arrays at the training size) of sample k."""
        if k in self._cache:
            return self._cache[k]
        stored = load_sample(self.root, self.files[k])
        pair = (stored, resized_sample(stored, self.height, self.width))
        if self.cache:
            self._cache[k] = pair
        return pair

    def __getitem__(self, step: int) -> dict[str, Tensor]:
        rng = np.random.default_rng([self.seed, step])
        rows: list[dict[str, Tensor]] = []
        for _ in range(self.batch_size):
            person = self.by_person[rng.integers(len(self.by_person))]
            source_k, target_k = rng.choice(person, 2, replace=len(person) < 2)
            (stored_s, source), (stored_t, target) = self.sample(source_k), self.sample(target_k)
            rows.append(
                {
                    "source": image_tensor(source["canvas"]),
                    "target": image_tensor(target["canvas"]),
                    "source_pncc": torch.from_numpy(source["pncc"]).permute(2, 0, 1) / 255.0,
                    "target_pncc": torch.from_numpy(target["pncc"]).permute(2, 0, 1) / 255.0,
                    "source_params": torch.from_numpy(source["params"]),
                    "target_params": torch.from_numpy(target["params"]),
                    "face_mask": torch.from_numpy(target["face_mask"])[None].float(),
                    "mouth_mask": torch.from_numpy(target["mouth_mask"])[None].float(),
                    "source_canvas": torch.from_numpy(stored_s["canvas"]),
                    "source_params_canvas": torch.from_numpy(stored_s["params"]),
                    "target_params_canvas": torch.from_numpy(stored_t["params"]),
                }
            )
        return {key: torch.stack([r[key] for r in rows]) for key in rows[0]}


class PredictorBatches(torch.utils.data.Dataset):
    """Item ``step`` is the batch of that step (deterministic in seed and step): up to
    ``batch_size`` crops, two per person where a person has two or more photos (the shape
    consistency term needs pairs). A batch: crop (B, S, S, 3) uint8; crop_params (B, 162);
    crop_landmarks (B, 468, 3); person (B,) int64."""

    def __init__(self, root: Path, batch_size: int, seed: int) -> None:
        index = load_index(root)
        self.arrays = [load_sample(root, s["file"]) for s in index["samples"]]
        people = sorted({s["person"] for s in index["samples"]})
        self.person = np.array([people.index(s["person"]) for s in index["samples"]], np.int64)
        self.by_person = [np.flatnonzero(self.person == p) for p in range(len(people))]
        self.batch_size, self.seed = batch_size, seed

    def __len__(self) -> int:
        return 2**62

    def targets(self) -> Tensor:
        """(N, 162) every sample's teacher parameters (for the predictor's statistics)."""
        return torch.from_numpy(np.stack([a["crop_params"] for a in self.arrays]))

    def __getitem__(self, step: int) -> dict[str, Tensor]:
        rng = np.random.default_rng([self.seed, step])
        chosen: list[int] = []
        while len(chosen) < self.batch_size:
            members = self.by_person[rng.integers(len(self.by_person))]
            take = min(2, len(members), self.batch_size - len(chosen))
            chosen += [int(k) for k in rng.choice(members, take, replace=False)]
        return {
            "crop": torch.from_numpy(np.stack([self.arrays[k]["landmark_crop"] for k in chosen])),
            "crop_params": torch.from_numpy(
                np.stack([self.arrays[k]["crop_params"] for k in chosen])
            ),
            "crop_landmarks": torch.from_numpy(
                np.stack([self.arrays[k]["crop_landmarks"] for k in chosen])
            ),
            "person": torch.from_numpy(self.person[chosen]),
        }

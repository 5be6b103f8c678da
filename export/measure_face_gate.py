"""Measure the human-face gate's scores (:mod:`reenact.face_gate`) on human and non-human faces.

Off-line tool, not used at serving time:

    python -m export.measure_face_gate                   # print the distributions
    python -m export.measure_face_gate --write-template  # (re)write reenact/data/face_template.json

Every face goes through the served steps (face_preprocess's detector and crop, the TorchScript
mesh predictor) and is scored as face_postprocess scores it. Classes:

- ``human``: every face the detector finds in the test corpus's human photos
  (:func:`tests.corpus.human_photos`), the same photos degraded (JPEG quality 15, blur, noise,
  dark), and the cameraman of scikit-image;
- ``drawn``: the ICT head painted by :class:`reenact.head_render.HeadPainter` at the allowed head
  poses with strong expressions and random identities;
- ``non_human``: every face the detector finds in :func:`tests.corpus.non_human_photos` (real
  dog, cat, mandrill, squirrel photos, a cartoon monkey), and, because a detector may fire on
  faces this one misses, each animal's face box cropped directly at 9 framings (3 sizes x 3
  shifts) as the detector would crop it. Human faces get the same 9 framings around their
  detected boxes (class ``human``), so both classes see the same crop perturbations.

Prints one row per face, min / median / max per class, and the thresholds with their margins.
"""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import skimage.data
import torch

from reenact import face_gate
from reenact.correspondence import Correspondence, view_params
from reenact.errors import RequestError
from reenact.fit import landmark_bases
from reenact.head_render import HeadPainter
from reenact.landmarks.detection import LandmarkConfig, RotatedRect, warp_crop
from reenact.morphable import FLIP_Y, MorphableModel
from reenact.pipeline import MESH_PREDICTOR_FILE
from reenact.postprocess import PostprocessConfig
from reenact.preprocess import FacePreprocessor
from tests import corpus

# Hand-set face boxes (x0, y0, x1, y1) in the pictures of tests.corpus.non_human_photos().
ANIMAL_FACE_BOXES = {
    "cat_chelsea": (130, 20, 330, 230),
    "dog_puppy_and_kitten": (60, 10, 150, 110),
    "dog_puppy_closeup": (60, 30, 330, 330),
    "dog_bulldog_and_cat": (85, 10, 140, 80),
    "dog_bulldog_closeup": (100, 20, 320, 300),
    "dogs_six_in_a_row": (40, 110, 85, 170),
    "dog_tan_closeup": (20, 50, 240, 290),
    "dog_black_white_closeup": (20, 50, 240, 290),
    "dog_white_closeup": (20, 50, 240, 290),
    "dog_pekingese": (120, 30, 440, 380),
    "monkey_mandrill": (60, 0, 452, 512),
    "cartoon_monkey_suzanne": (150, 0, 520, 330),
    "squirrel": (280, 150, 360, 230),
}
FRAMING_SIZES = (0.8, 1.0, 1.25)  # crop side / the detector's (roi_scale x box side)
FRAMING_SHIFTS = (-0.1, 0.0, 0.1)  # crop centre shift right, in box widths
# Painted heads: (yaw, pitch) in degrees up to the served HEAD_POSE limits, and expressions.
PAINTED_POSES = ((0, 0), (30, 0), (-30, 0), (0, 20), (0, -20), (25, 15))
PAINTED_EXPRESSIONS = {
    "neutral": {},
    "jaw_open": {"jawOpen": 1.0},
    "smile": {"mouthSmile_L": 1.0, "mouthSmile_R": 1.0, "cheekSquint_L": 0.5},
    "surprise": {"jawOpen": 0.7, "browInnerUp_L": 1.0, "browInnerUp_R": 1.0, "eyeWide_L": 1.0},
    "pucker_blink": {"mouthPucker": 1.0, "eyeBlink_L": 1.0, "eyeBlink_R": 1.0},
}


@dataclass(frozen=True)
class Row:
    name: str
    kind: str  # "human", "drawn" or "non_human"
    detection_score: float  # nan for a framing cropped without the detector
    scores: face_gate.GateScores


def write_template(path: Path = face_gate.TEMPLATE_FILE) -> np.ndarray:
    """The ICT mean face at the FaceMesh correspondences, frontal, in image axes, normalised.
    Returns (468, 3) float64 and writes it to ``path``."""
    model, table = MorphableModel.load(), Correspondence.load()
    mean, _ = landmark_bases(model, table.tri_vertices, table.barycentric)
    points = face_gate.normalise(mean * FLIP_Y)
    document = {
        "about": "reenact.face_gate's canonical human layout: the ICT-FaceKit mean face at the "
        "468 FaceMesh landmark correspondences, frontal, image axes (x right, y down, z nearer), "
        "centred, RMS radius 1. Written by export/measure_face_gate.py --write-template.",
        "points": np.round(points, 5).tolist(),
    }
    path.write_text(json.dumps(document, separators=(",", ":")) + "\n", encoding="utf-8")
    return points


class Scorer:
    """The served steps up to face_postprocess's gate, in this process."""

    def __init__(self) -> None:
        self.preprocess = FacePreprocessor()
        self.predictor = torch.jit.load(str(MESH_PREDICTOR_FILE), map_location="cpu")
        self.size = LandmarkConfig().input_size
        self.roi_scale = LandmarkConfig().roi_scale

    def crop_scores(self, crop: np.ndarray) -> face_gate.GateScores:
        """crop: (192, 192, 3) uint8 landmark crop."""
        with torch.inference_mode():
            _, landmarks, presence = self.predictor(torch.from_numpy(crop[None]))
        return face_gate.scores(landmarks[0].numpy(), float(presence[0, 0]))

    def detected(self, image: np.ndarray) -> list[tuple[float, np.ndarray, np.ndarray]]:
        """(detection score, box (4,), landmark crop) of every face the detector finds."""
        _, data = cv2.imencode(".png", np.ascontiguousarray(image[..., ::-1]))
        faces = []
        for index in range(len(self.preprocess.detector(image))):
            try:
                pre = self.preprocess(data.tobytes(), index)
            except RequestError:  # found on the raw array but not after decoding: skip
                continue
            faces.append((pre.detection_score, pre.face_box, pre.landmark_crop))
        return faces

    def framings(self, image: np.ndarray, box) -> list[tuple[str, np.ndarray]]:
        """The 9 crops around ``box`` (x0, y0, x1, y1) of FRAMING_SIZES x FRAMING_SHIFTS."""
        x0, y0, x1, y1 = (float(v) for v in box)
        side = max(x1 - x0, y1 - y0) * self.roi_scale
        crops = []
        for size in FRAMING_SIZES:
            for shift in FRAMING_SHIFTS:
                centre_x = (x0 + x1) / 2 + shift * (x1 - x0)
                roi = RotatedRect(centre_x, (y0 + y1) / 2, side * size, side * size, 0.0)
                crop = warp_crop(image, roi, self.size, cv2.BORDER_REPLICATE)
                crops.append((f"x{size:g}{shift:+.1f}", crop))
        return crops


def degraded(image: np.ndarray) -> dict[str, np.ndarray]:
    """Harder versions of a photo: low JPEG quality, blur, sensor noise, under-exposure."""
    _, jpeg = cv2.imencode(".jpg", image[..., ::-1].copy(), [cv2.IMWRITE_JPEG_QUALITY, 15])
    noise = np.random.default_rng(3).normal(0.0, 12.0, image.shape)
    return {
        "jpeg15": cv2.imdecode(jpeg, cv2.IMREAD_COLOR)[..., ::-1].copy(),
        "blur2": cv2.GaussianBlur(image, (0, 0), 2.0),
        "noise12": np.clip(image + noise, 0, 255).astype(np.uint8),
        "dark35": (image * 0.35).astype(np.uint8),
    }


def painted_heads(seed: int = 5) -> dict[str, np.ndarray]:
    """(256, 256, 3) uint8 pictures of the ICT head: poses x expressions, random identities."""
    model = MorphableModel.load()
    painter = HeadPainter(model, features=True)
    names = list(model.expression_names)
    rng = np.random.default_rng(seed)
    pictures = {}
    for (yaw, pitch), (label, weights) in zip(
        PAINTED_POSES * 2, list(PAINTED_EXPRESSIONS.items()) * 3, strict=False
    ):
        params = view_params(float(yaw), float(pitch), 256, 14.0)
        params[0, :100] = rng.normal(0.0, 1.0, 100)
        for name, weight in weights.items():
            params[0, 100 + names.index(name)] = weight
        vertices = model.decode(params)[0]
        pictures[f"painted_{label}_y{yaw}_p{pitch}"] = painter.paint(vertices, 256, 256).image
    return pictures


def human_pictures() -> dict[str, np.ndarray]:
    pictures = {photo.name: photo.image for photo in corpus.human_photos()}
    camera = skimage.data.camera()
    pictures["cameraman"] = np.repeat(camera[:220, 150:370, None], 3, axis=-1)
    for source in ("astronaut", "group_t1"):
        for label, image in degraded(pictures[source]).items():
            pictures[f"{source}_{label}"] = image
    return pictures


def measure(scorer: Scorer) -> list[Row]:
    rows = []
    framed = {"astronaut", "tom_hanks_closeup", "group_t1"}  # framings around their boxes
    for name, image in human_pictures().items():
        for index, (score, box, crop) in enumerate(scorer.detected(image)):
            label = f"{name}#{index}"
            rows.append(Row(label, "human", score, scorer.crop_scores(crop)))
            if name in framed:
                for tag, framing in scorer.framings(image, box):
                    rows.append(
                        Row(f"{label}_{tag}", "human", math.nan, scorer.crop_scores(framing))
                    )
    for name, image in painted_heads().items():  # the face the service picks: the largest
        faces = scorer.detected(image)
        score, box, crop = max(faces, key=lambda face: float(np.prod(face[1][2:] - face[1][:2])))
        rows.append(Row(f"{name}#largest", "drawn", score, scorer.crop_scores(crop)))
    for photo in corpus.non_human_photos():
        for index, (score, _, crop) in enumerate(scorer.detected(photo.image)):
            rows.append(Row(f"{photo.name}#{index}", "non_human", score, scorer.crop_scores(crop)))
        if photo.name in ANIMAL_FACE_BOXES:
            for tag, framing in scorer.framings(photo.image, ANIMAL_FACE_BOXES[photo.name]):
                scores = scorer.crop_scores(framing)
                rows.append(Row(f"{photo.name}_{tag}", "non_human", math.nan, scores))
    return rows


def report(rows: list[Row], config: PostprocessConfig) -> None:
    print(
        f"{'face':44s} {'class':9s} {'detect':>6s} {'presence':>9s} {'log-odds':>8s} {'layout':>6s}"
    )
    for row in rows:
        s = row.scores
        print(
            f"{row.name:44s} {row.kind:9s} {row.detection_score:6.3f} {s.presence:9.6f} "
            f"{face_gate.log_odds(s.presence):8.2f} {s.layout_distance:6.3f}"
        )
    print("\nper class (faces the detector found / all, incl. framings): min  median  max")
    for kind in ("human", "drawn", "non_human"):
        for label, chosen in (
            ("detected", [r for r in rows if r.kind == kind and not math.isnan(r.detection_score)]),
            ("all", [r for r in rows if r.kind == kind]),
        ):
            if not chosen:
                continue
            odds = np.array([face_gate.log_odds(r.scores.presence) for r in chosen])
            layout = np.array([r.scores.layout_distance for r in chosen])
            print(
                f"  {kind:9s} {label:8s} n={len(chosen):3d}  presence log-odds "
                f"{np.min(odds):6.2f} {np.median(odds):6.2f} {np.max(odds):6.2f}   layout "
                f"{np.min(layout):.3f} {np.median(layout):.3f} {np.max(layout):.3f}"
            )
    threshold = config.min_presence_log_odds
    print(f"\nthresholds: min_presence_log_odds {threshold}")
    for kind in ("human", "drawn", "non_human"):
        odds = [face_gate.log_odds(r.scores.presence) for r in rows if r.kind == kind]
        worst = max(odds) if kind == "non_human" else min(odds)
        print(f"  {kind:9s} worst {worst:6.2f}  margin {abs(worst - threshold):.2f}")
    served = [r for r in rows if r.kind != "non_human"]
    refused = [r for r in rows if r.kind == "non_human"]
    widest_human = max(r.scores.layout_distance for r in served)
    print(
        f"  max_layout_distance {config.max_layout_distance}: widest human/drawn "
        f"{widest_human:.3f} (margin x{config.max_layout_distance / widest_human:.2f})"
    )
    wrong = [r.name for r in served if not passes(r.scores, config)]
    missed = [r.name for r in refused if passes(r.scores, config)]
    print(
        f"human/drawn faces refused: {wrong or 'none'}; non-human faces served: {missed or 'none'}"
    )


def passes(scores: face_gate.GateScores, config: PostprocessConfig) -> bool:
    return (
        scores.presence >= config.min_presence
        and scores.presence_log_odds >= config.min_presence_log_odds
        and scores.layout_distance <= config.max_layout_distance
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--write-template", action="store_true", help="rewrite the template")
    args = parser.parse_args()
    if args.write_template:
        write_template()
        print(f"wrote {face_gate.TEMPLATE_FILE}")
        return
    torch.set_num_threads(1)
    report(measure(Scorer()), PostprocessConfig())


if __name__ == "__main__":
    main()

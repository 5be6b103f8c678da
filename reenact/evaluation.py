"""Self-consistency of reenacted images, read back with the service's own mesh predictor.

For each output of a request, the expression the mesh predictor recovers from the output is
compared with the requested target expression and with the source's. The same readback is also
applied to a ground-truth picture of each target (the ICT head painted, brows and lips included,
with exactly the target parameters, :class:`reenact.head_render.HeadPainter`), which says how well
the readback itself can score on a clean picture of the target: the ceiling of the check.

Three counts (each over the K outputs):

- ``output_nearer_target``: recovered(output) is nearer the target weights than the source's;
- ``truth_nearer_target``: recovered(ground truth) is nearer the target than the source's — the
  readback's own ceiling on the first count;
- ``output_nearer_truth_readback``: recovered(output) is nearer recovered(ground truth) than the
  source's — the first count with the readback's bias taken out.

Distances are Euclidean over the 55 expression weights; a readback that found no face gives NaN
distances, which count as misses.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from reenact.head_render import HeadPainter
from reenact.morphable import EXPR_SLICE, MorphableModel

ReadExpression = Callable[[bytes], np.ndarray]
"""Encoded image → (55,) float32 expression weights recovered by the mesh predictor."""


@dataclass(frozen=True)
class Readback:
    """One output's distances (expression-weight space)."""

    name: str
    output_to_target: float
    output_to_source: float
    truth_to_target: float
    truth_to_source: float
    output_to_truth: float

    @property
    def output_nearer_target(self) -> bool:
        return self.output_to_target < self.output_to_source

    @property
    def truth_nearer_target(self) -> bool:
        return self.truth_to_target < self.truth_to_source

    @property
    def output_nearer_truth_readback(self) -> bool:
        return self.output_to_truth < self.output_to_source


def ground_truth_picture(
    painter: HeadPainter, model: MorphableModel, params: np.ndarray, height: int, width: int
) -> bytes:
    """PNG of the ICT head painted with ``params`` (162,) float32 (canvas pixels)."""
    vertices = model.decode(np.asarray(params, np.float32)[None])[0]
    image = painter.paint(vertices, height, width).image
    ok, data = cv2.imencode(".png", np.ascontiguousarray(image[..., ::-1]))
    if not ok:
        raise RuntimeError("PNG encoding failed")
    return data.tobytes()


def read_back(
    names: tuple[str, ...] | list[str],
    outputs: list[bytes],
    target_params: np.ndarray,
    source_params: np.ndarray,
    read_expression: ReadExpression,
    model: MorphableModel,
    canvas_size: tuple[int, int],
) -> list[Readback]:
    """Distances for each output.

    target_params: (K, 162) float32 and source_params: (162,) float32, as face_reenactment returns
    them; canvas_size: (height, width) of the outputs.
    """
    painter = HeadPainter(model, features=True)
    source = np.asarray(source_params, np.float32)[EXPR_SLICE]
    rows = []
    for name, data, params in zip(names, outputs, target_params, strict=True):
        target = params[EXPR_SLICE]
        recovered = read_expression(data)
        truth = read_expression(ground_truth_picture(painter, model, params, *canvas_size))
        rows.append(
            Readback(
                name=name,
                output_to_target=float(np.linalg.norm(recovered - target)),
                output_to_source=float(np.linalg.norm(recovered - source)),
                truth_to_target=float(np.linalg.norm(truth - target)),
                truth_to_source=float(np.linalg.norm(truth - source)),
                output_to_truth=float(np.linalg.norm(recovered - truth)),
            )
        )
    return rows


def summary(rows: list[Readback]) -> dict[str, int]:
    """The three counts of the module docstring."""
    return {
        "output_nearer_target": sum(r.output_nearer_target for r in rows),
        "truth_nearer_target": sum(r.truth_nearer_target for r in rows),
        "output_nearer_truth_readback": sum(r.output_nearer_truth_readback for r in rows),
    }

"""Self-consistency evaluation: distances and counts, ground-truth pictures."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from reenact.correspondence import view_params
from reenact.evaluation import read_back, summary
from reenact.morphable import EXPR_SLICE


def test_counts_follow_what_the_readback_reports(model):
    """A reader that sees each output as its exact target and every ground-truth picture as the
    source: outputs count as nearer the target, ground truth never does."""
    source = view_params(0.0, 0.0, 256, 7.0)[0]
    targets = np.repeat(source[None], 3, axis=0)
    for k in range(3):
        targets[k, EXPR_SLICE][[k, 10 + k]] = 1.0
    outputs = [f"output {k}".encode() for k in range(3)]
    painted = []

    def read_expression(data: bytes) -> np.ndarray:
        if data in outputs:
            return targets[outputs.index(data), EXPR_SLICE]
        painted.append(np.asarray(Image.open(io.BytesIO(data))))
        return source[EXPR_SLICE]

    rows = read_back(["a", "b", "c"], outputs, targets, source, read_expression, model, (256, 256))
    assert [r.name for r in rows] == ["a", "b", "c"]
    assert all(r.output_to_target == 0.0 for r in rows)
    assert all(r.output_to_source == pytest.approx(np.sqrt(2.0)) for r in rows)
    assert summary(rows) == {
        "output_nearer_target": 3,
        "truth_nearer_target": 0,
        "output_nearer_truth_readback": 0,
    }
    # one ground-truth picture per target, at the canvas size, with the head on a grey background
    assert len(painted) == 3 and all(p.shape == (256, 256, 3) for p in painted)
    assert all((p[:, :, 0] != 128).mean() > 0.1 and (p[0, 0] == 128).all() for p in painted)
    # the targets differ in expression, so their pictures differ
    assert np.abs(painted[0].astype(int) - painted[1]).max() > 0

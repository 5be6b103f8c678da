"""Measure the FaceMesh ↔ ICT landmark correspondence and write it into the package data.

    python export/build_correspondence.py [--out reenact/data/facemesh_ict_correspondence.json]

Needs the MediaPipe weights (``make setup``) and the ICT model. Prints the reprojection error on
the building views and on held-out heads (other identities, expressions and poses).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from reenact.correspondence import DATA_FILE, measure, reprojection_error, view_params
from reenact.head_render import HeadPainter
from reenact.landmarks.detection import FaceLandmarker
from reenact.morphable import MorphableModel

VIEWS = tuple((yaw, pitch) for yaw in (-20, -10, 0, 10, 20) for pitch in (-10, 0, 10))
HELD_OUT = ((15.0, -5.0), (-25.0, 5.0), (5.0, 12.0))


def held_out_params(seed: int, yaw: float, pitch: float) -> np.ndarray:
    rng = np.random.default_rng(seed)
    params = view_params(yaw, pitch, 512, 13.0)
    params[0, :100] = rng.normal(size=100)
    params[0, 100:155] = rng.uniform(0.0, 0.3, size=55) * (rng.uniform(size=55) < 0.15)
    return params


def main(argv: list[str] | None = None) -> int:
    default_out = Path(__file__).resolve().parents[1] / "reenact" / DATA_FILE
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=default_out)
    args = parser.parse_args(argv)

    model = MorphableModel.load()
    landmarker = FaceLandmarker.from_assets()
    table, stats = measure(model, landmarker, VIEWS)
    painter = HeadPainter(model)
    build_errors = [
        reprojection_error(model, landmarker, table, view_params(y, p, 512, 14.0), painter=painter)
        for y, p in VIEWS
    ]
    held_errors = [
        reprojection_error(model, landmarker, table, held_out_params(k, y, p), painter=painter)
        for k, (y, p) in enumerate(HELD_OUT)
    ]
    stats["reprojection_iod_building_views_mean"] = float(np.mean(build_errors))
    stats["reprojection_iod_held_out"] = [round(e, 4) for e in held_errors]
    table.save(args.out, {"method": "median over painted views, snapped to M_Face", **stats})
    for key, value in stats.items():
        print(f"{key}: {value}")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

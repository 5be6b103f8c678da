"""Render PNCC previews of the ICT head to PNG (run from the repository root).

``python -m clients.perf.pncc.preview [out_dir]`` writes, under out_dir (default out/pncc):
neutral.png and expression.png (jawOpen, mouthSmile_L/R, browInnerUp_L/R = 1), each the face
area and the whole head side by side, 512 x 384 per panel, frontal and turned (yaw 0.5).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image

from clients.perf.pncc.scenes import face_params
from reenact.morphable import EXPR_SLICE, ROT_SLICE, MorphableModel
from reenact.pncc import PnccRenderer

HEIGHT, WIDTH = 512, 384
STRONG = ("jawOpen", "mouthSmile_L", "mouthSmile_R", "browInnerUp_L", "browInnerUp_R")


def main() -> None:
    out_dir = Path(sys.argv[1] if len(sys.argv) > 1 else "out/pncc")
    out_dir.mkdir(parents=True, exist_ok=True)
    model = MorphableModel.load()
    renderers = [PnccRenderer.from_model(model, region) for region in ("face", "head")]
    params = np.repeat(face_params(model, 1, HEIGHT, WIDTH), 2, axis=0)
    params[1, ROT_SLICE] = [0.0, 0.5, 0.0]
    for name, active in (("neutral", ()), ("expression", STRONG)):
        for expr in active:
            params[:, EXPR_SLICE.start + model.expression_names.index(expr)] = 1.0
        verts = model.decode(params)
        panels = [r.render(verts, HEIGHT, WIDTH).image for r in renderers]  # 2 x (2, H, W, 3)
        rows = [np.concatenate([p[i] for p in panels], axis=1) for i in range(2)]
        pixels = np.clip(np.concatenate(rows, axis=1) * 255 + 0.5, 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(out_dir / f"{name}.png")


if __name__ == "__main__":
    main()

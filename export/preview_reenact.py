"""Pictures for looking at the geometric reenactor: the astronaut in the 15 default emotions.

    python export/preview_reenact.py [--out out/reenact] [--yaw 20]

Writes ``sheet.png`` (source + 15 emotions), ``faces.png`` (zoomed faces), ``turn.png`` (the
source expression with ``--yaw`` degrees added, plus happy and sad with that turn) and
``timings.txt`` (median render and reenactor times for the 15 emotions).
"""

from __future__ import annotations

import argparse
import io
import time
from pathlib import Path

import numpy as np
import skimage.data
import torch
from PIL import Image

from reenact.contact_sheet import contact_sheet
from reenact.emotions import load_catalogue
from reenact.geometric import ReenactorRenderer
from reenact.morphable import EXPR_SLICE, ROT_SLICE, MorphableModel
from reenact.pipeline import FaceMeshPipeline
from reenact.reenactor import GeometricReenactor

DEFAULT_OUT = Path(__file__).resolve().parents[1] / "out" / "reenact"
FACE_BOX = (slice(90, 350), slice(80, 304))  # rows, columns of the canvas around the face


def astronaut_source() -> tuple[np.ndarray, np.ndarray]:
    """The scikit-image astronaut through the face_mesh pipeline: canvas (512, 384, 3) uint8 and
    source params (162,) float32."""
    buffer = io.BytesIO()
    Image.fromarray(skimage.data.astronaut()).save(buffer, format="JPEG", quality=95)
    output = FaceMeshPipeline()(buffer.getvalue())
    return output.preprocessed.canvas, output.result.source_params.astype(np.float32)


def with_expressions(source: np.ndarray, expressions: np.ndarray) -> np.ndarray:
    """(K, 162) copies of ``source`` (162,) with expression rows (K, 55) swapped in."""
    targets = np.repeat(source[None], len(expressions), axis=0)
    targets[:, EXPR_SLICE] = expressions
    return targets


def reenact(renderer, reenactor, canvas, source, targets) -> np.ndarray:
    """(K, H, W, 3) uint8 pictures of ``targets`` (K, 162)."""
    source_render, target_render = renderer.render(source, targets)
    with torch.inference_mode():
        out = reenactor(
            torch.from_numpy(canvas),
            torch.from_numpy(source_render),
            torch.from_numpy(target_render),
            torch.from_numpy(targets),
        )
    return out.numpy()


def median_ms(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000.0 * float(np.median(times))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--yaw", type=float, default=20.0, help="head turn for turn.png, degrees")
    parser.add_argument("--repeats", type=int, default=7, help="timing runs (median)")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(2)

    model = MorphableModel.load()
    catalogue = load_catalogue(model.expression_names)
    renderer = ReenactorRenderer(model)
    reenactor = torch.jit.script(GeometricReenactor())
    canvas, source = astronaut_source()
    names = list(catalogue.default)
    targets = with_expressions(source, catalogue.expressions(names))

    images = reenact(renderer, reenactor, canvas, source, targets)
    sheet = contact_sheet([canvas, *images], ["source", *names])
    Image.fromarray(sheet).save(args.out / "sheet.png")
    rows, cols = FACE_BOX
    faces = [canvas[rows, cols], *(image[rows, cols] for image in images)]
    Image.fromarray(contact_sheet(faces, ["source", *names], tile_width=320)).save(
        args.out / "faces.png"
    )

    turned = with_expressions(
        source, np.stack([source[EXPR_SLICE], *catalogue.expressions(["happy", "sad"])])
    )
    turned[:, ROT_SLICE.start + 1] += np.deg2rad(args.yaw)
    turned_back = turned.copy()
    turned_back[:, ROT_SLICE.start + 1] -= 2.0 * np.deg2rad(args.yaw)
    turns = reenact(renderer, reenactor, canvas, source, np.concatenate([turned, turned_back]))
    labels = [
        f"{s} yaw {sign}{args.yaw:g}" for sign in "+-" for s in ("source expr", "happy", "sad")
    ]
    Image.fromarray(contact_sheet([*turns], labels, columns=3, tile_width=320)).save(
        args.out / "turn.png"
    )

    source_render, target_render = renderer.render(source, targets)
    inputs = [torch.from_numpy(a) for a in (canvas, source_render, target_render, targets)]
    render_ms = median_ms(lambda: renderer.render(source, targets), args.repeats)
    with torch.inference_mode():
        reenact_ms = median_ms(lambda: reenactor(*inputs), args.repeats)
    report = f"K={len(targets)} render {render_ms:.1f} ms, reenactor {reenact_ms:.1f} ms (median)"
    (args.out / "timings.txt").write_text(report + "\n")
    print(report)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Benchmark pnccrender against a vectorised PyTorch rasterizer on ICT face PNCCs.

Run from the repository root: ``python -m clients.perf.pncc.bench [--repeats 20]``.
One ICT face-area mesh (9,409 vertices, 18,460 triangles) and a batch of 16, at 512 x 384
(H x W), the face spanning ~60% of the image height.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch

import pnccrender
from clients.perf.pncc.baseline_torch import render_torch
from clients.perf.pncc.scenes import face_params
from reenact.morphable import MorphableModel
from reenact.pncc import FACE_VERTEX_COUNT, PnccRenderer

HEIGHT, WIDTH, BATCH = 512, 384, 16


def timed(fn: Callable[[], object], repeats: int) -> float:
    """Median wall time of fn() in milliseconds, after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()

    model = MorphableModel.load()
    pncc = PnccRenderer.from_model(model, region="face")
    params = face_params(model, BATCH, HEIGHT, WIDTH)
    verts = model.decode(params, vertex_ids=np.arange(FACE_VERTEX_COUNT))
    colors = np.ascontiguousarray(pncc.colors[:FACE_VERTEX_COUNT])
    tris = pncc.triangles
    one = np.ascontiguousarray(verts[:1])
    cores = os.cpu_count() or 1

    def ours(v: np.ndarray, threads: int) -> Callable[[], object]:
        return lambda: pnccrender.render(v, tris, colors, HEIGHT, WIDTH, num_threads=threads)

    tv, tt, tc = torch.from_numpy(verts), torch.from_numpy(tris).long(), torch.from_numpy(colors)

    def baseline(b: int) -> Callable[[], object]:
        return lambda: render_torch(tv[:b], tt, tc, HEIGHT, WIDTH)

    ref = render_torch(tv, tt, tc, HEIGHT, WIDTH)
    got = pnccrender.render(verts, tris, colors, HEIGHT, WIDTH)
    covered = got.triangle_id >= 0
    same = (ref[2].numpy() == got.triangle_id).mean()
    print(f"ICT face area: {verts.shape[1]} vertices, {tris.shape[0]} triangles, {HEIGHT}x{WIDTH}")
    print(f"face pixels per mesh: {covered.sum() / BATCH:.0f} ({covered.mean():.0%} of the image)")
    print(f"triangle ids equal to the torch baseline: {same:.4%} of pixels")
    print(f"cpu cores: {cores}, torch threads: {torch.get_num_threads()}")
    print()
    print(f"{'case':<28}{'pnccrender ms':>15}{'torch ms':>12}{'speed-up':>10}")
    for label, v, b in (("1 mesh", one, 1), (f"batch of {BATCH}", verts, BATCH)):
        base = timed(baseline(b), max(3, args.repeats // 4))
        for threads in sorted({1, cores}):
            ms = timed(ours(v, threads), args.repeats)
            name = f"{label}, {threads} thread{'s' if threads > 1 else ''}"
            print(f"{name:<28}{ms:>15.2f}{base:>12.1f}{base / ms:>9.0f}x")
    target = timed(lambda: pnccrender.render(verts, tris, colors, HEIGHT, WIDTH), args.repeats)
    print()
    print(f"{BATCH} PNCCs, default threads: {target:.2f} ms (target <= 20 ms)")


if __name__ == "__main__":
    main()

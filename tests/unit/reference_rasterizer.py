"""An independent, deliberately simple z-buffer rasterizer to check pnccrender against.

It states pnccrender's documented conventions directly: pixel [i, j] is sampled at
(j + 0.5, i + 0.5); x, y are snapped to multiples of 1/256 pixel (round half to even); a pixel
centre is covered when it is strictly inside the triangle, or on an edge that is a top edge
(horizontal, the triangle below it) or a left edge (not horizontal, the triangle to its
right); larger z is nearer and an equal float32 depth keeps the earlier triangle; attributes
are interpolated linearly with barycentrics of the snapped positions. Exact integer
arithmetic, one triangle at a time over its bounding box: slow, for small images only.
"""

from __future__ import annotations

import numpy as np

SUBPIXEL = 256
MAX_COORDINATE = 2.0**20


def _covers(a: np.ndarray, b: np.ndarray, c: np.ndarray, px: np.ndarray, py: np.ndarray):
    """Whether pixel centres (px, py) (int64 subpixel arrays) are covered by the edge a -> b
    of triangle (a, b, c), on the side of c; a, b, c are (x, y) Python ints."""
    (ax, ay), (bx, by), (cx, cy) = a, b, c
    side_c = (bx - ax) * (cy - ay) - (by - ay) * (cx - ax)
    side_p = (bx - ax) * (py - ay) - (by - ay) * (px - ax)
    strictly_inside = side_p * np.sign(side_c) > 0
    if ay == by:  # horizontal: a top edge when the triangle lies below it (y down)
        owns_edge = cy > ay
    else:  # a left edge when the triangle lies to its right
        # c is right of the edge's line when cx > ax + (bx - ax) * (cy - ay) / (by - ay).
        cross = (cx - ax) * (by - ay) - (bx - ax) * (cy - ay)
        owns_edge = cross > 0 if by > ay else cross < 0
    return strictly_inside | ((side_p == 0) & owns_edge)


def rasterize(
    vertices: np.ndarray,
    triangles: np.ndarray,
    attributes: np.ndarray,
    height: int,
    width: int,
    background: float = 0.0,
    cull_backfaces: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """vertices (N, 3), triangles (T, 3), attributes (N, C).

    Returns image (H, W, C) float64, depth (H, W) float32 (-inf where empty), triangle_id
    (H, W) int64 (-1 where empty), barycentrics (H, W, 3) float64 (0 where empty).
    """
    v = np.asarray(vertices, np.float64)
    attrs = np.asarray(attributes, np.float64)
    finite = np.isfinite(v).all(axis=1) & (np.abs(v[:, :2]) <= MAX_COORDINATE).all(axis=1)
    snapped = np.zeros((len(v), 2), np.int64)
    snapped[finite] = np.rint(v[finite, :2] * SUBPIXEL).astype(np.int64)

    image = np.full((height, width, attrs.shape[1]), background, np.float64)
    depth = np.full((height, width), -np.inf, np.float32)
    triangle_id = np.full((height, width), -1, np.int64)
    bary = np.zeros((height, width, 3), np.float64)

    for t, (i0, i1, i2) in enumerate(np.asarray(triangles)):
        if not finite[[i0, i1, i2]].all():
            continue
        p = [tuple(int(c) for c in snapped[i]) for i in (i0, i1, i2)]
        area = (p[1][0] - p[0][0]) * (p[2][1] - p[0][1]) - (p[1][1] - p[0][1]) * (p[2][0] - p[0][0])
        if area == 0 or (cull_backfaces and area > 0):  # > 0: clockwise on screen, y down
            continue
        xs, ys = [q[0] for q in p], [q[1] for q in p]
        # Pixels whose centre lies in the bounding box, clipped to the image.
        c0 = max(0, -((SUBPIXEL // 2 - min(xs)) // SUBPIXEL))
        c1 = min(width - 1, (max(xs) - SUBPIXEL // 2) // SUBPIXEL)
        r0 = max(0, -((SUBPIXEL // 2 - min(ys)) // SUBPIXEL))
        r1 = min(height - 1, (max(ys) - SUBPIXEL // 2) // SUBPIXEL)
        if c0 > c1 or r0 > r1:
            continue
        rows, cols = np.mgrid[r0 : r1 + 1, c0 : c1 + 1]
        py = rows.astype(np.int64) * SUBPIXEL + SUBPIXEL // 2
        px = cols.astype(np.int64) * SUBPIXEL + SUBPIXEL // 2
        inside = (
            _covers(p[1], p[2], p[0], px, py)
            & _covers(p[2], p[0], p[1], px, py)
            & _covers(p[0], p[1], p[2], px, py)
        )

        def weight(a, b, px=px, py=py):
            return (b[0] - a[0]) * (py - a[1]) - (b[1] - a[1]) * (px - a[0])

        w = np.stack([weight(p[1], p[2]), weight(p[2], p[0]), weight(p[0], p[1])], -1) / area
        z = (w * v[[i0, i1, i2], 2]).sum(-1).astype(np.float32)
        for (r, c), b, zz in zip(np.argwhere(inside), w[inside], z[inside], strict=True):
            rr, cc = r + r0, c + c0
            if zz > depth[rr, cc]:
                depth[rr, cc] = zz
                triangle_id[rr, cc] = t
                bary[rr, cc] = b
                image[rr, cc] = b @ attrs[[i0, i1, i2]]
    return image, depth, triangle_id, bary

"""pnccrender: a fast C++ z-buffer rasterizer of per-vertex attributes.

Renders B meshes that share one triangle list (e.g. one morphable model in B poses) into
attribute images, depth maps and triangle-id maps in one call, in parallel, without the GIL.

Conventions
-----------
* Screen space: x to the right, y down, in pixels. Pixel ``[i, j]`` (row i, column j) covers
  ``[j, j+1) x [i, i+1)`` and is sampled at its centre ``(j + 0.5, i + 0.5)``: a vertex at
  ``(0, 0)`` is the top-left corner of the image.
* x, y are snapped to a 1/256-pixel grid and coverage is decided exactly (integer edge
  functions) with the top-left fill rule: a closed mesh tiling the image covers every pixel
  exactly once.
* z: larger is nearer the camera (depth test keeps the largest z; equal depths: the triangle
  listed first wins).
* Attributes and z are interpolated linearly in screen space (no perspective correction).
* Front face: counter-clockwise as seen on the screen, i.e.
  ``(x1-x0)*(y2-y0) - (y1-y0)*(x2-x0) < 0`` in these y-down coordinates: the OBJ / OpenGL
  winding (counter-clockwise seen from the front) after a projection that flips y. Back faces
  are drawn unless ``cull_backfaces=True``.
* Skipped triangles: zero area (after snapping), or a vertex with a non-finite coordinate or
  ``|x|`` or ``|y|`` > ``MAX_COORDINATE`` pixels. Out-of-image parts are clipped.
"""

from __future__ import annotations

import operator
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from pnccrender import _core

__all__ = ["MAX_COORDINATE", "MAX_IMAGE_SIDE", "MAX_THREADS", "RenderResult", "render"]

MAX_IMAGE_SIDE: int = _core.MAX_IMAGE_SIDE
MAX_COORDINATE: float = _core.MAX_COORDINATE
MAX_THREADS: int = _core.MAX_THREADS


class RenderResult(NamedTuple):
    """What :func:`render` returns; a leading B axis on every array for batched vertices.

    image: (H, W, C) float32, the interpolated attributes, ``background`` where empty.
    depth: (H, W) float32, the interpolated z, ``-inf`` where empty.
    triangle_id: (H, W) int32, index into ``triangles``, ``-1`` where empty.
    barycentrics: (H, W, 3) float32 weights of the triangle's three vertices (in the order of
        its row of ``triangles``), 0 where empty; None unless ``return_barycentrics``.
    """

    image: np.ndarray
    depth: np.ndarray
    triangle_id: np.ndarray
    barycentrics: np.ndarray | None


def _as_float32(name: str, value: npt.ArrayLike) -> np.ndarray:
    arr = np.asarray(value)
    if arr.dtype.kind not in "fiu":
        raise ValueError(f"{name} must hold real numbers, got dtype {arr.dtype}")
    return np.ascontiguousarray(arr, dtype=np.float32)


def _as_int32(name: str, value: npt.ArrayLike) -> np.ndarray:
    arr = np.asarray(value)
    if arr.size == 0 and arr.dtype.kind == "f":
        arr = arr.astype(np.int32)
    if arr.dtype.kind not in "iu":
        raise ValueError(f"{name} must hold integers, got dtype {arr.dtype}")
    if arr.dtype != np.int32 and arr.size and (arr.min() < 0 or arr.max() > np.iinfo(np.int32).max):
        raise ValueError(f"{name} holds values outside [0, 2**31)")
    return np.ascontiguousarray(arr, dtype=np.int32)


def render(
    vertices: npt.ArrayLike,
    triangles: npt.ArrayLike,
    attributes: npt.ArrayLike,
    height: int,
    width: int,
    *,
    background: float = 0.0,
    return_barycentrics: bool = False,
    cull_backfaces: bool = False,
    num_threads: int | None = None,
) -> RenderResult:
    """Rasterize one mesh or a batch of meshes sharing ``triangles`` (z-buffered).

    Args:
        vertices: (N, 3) or (B, N, 3) float32 screen-space vertices: x, y in pixels (x right,
            y down, pixel centres at integer + 0.5), z larger = nearer.
        triangles: (T, 3) int32 vertex indices in [0, N), shared by all meshes.
        attributes: (N, C) float32 per-vertex values shared by all meshes, or (B, N, C)
            per mesh (batched vertices only). Any C >= 0.
        height, width: image size H, W in [1, MAX_IMAGE_SIDE].
        background: image value where no triangle is drawn.
        return_barycentrics: also return the (H, W, 3) barycentric weights.
        cull_backfaces: skip back faces (clockwise as seen on the screen).
        num_threads: worker threads (None: one per hardware thread). A batch is split across
            meshes, a single mesh across row bands; results do not depend on it.

    Arrays that are not C-contiguous or not float32 / int32 are copied (converted) first;
    C-contiguous float32 / int32 arrays are used in place. Non-finite vertices make their
    triangles skipped (not an error).

    Returns:
        RenderResult(image, depth, triangle_id, barycentrics), see :class:`RenderResult`.

    Raises:
        ValueError: wrong shapes, non-numeric dtypes, indices outside [0, N), sizes or thread
            counts out of range.
        TypeError: height, width or num_threads not an integer.
    """
    h = operator.index(height)
    w = operator.index(width)
    threads = 0 if num_threads is None else operator.index(num_threads)
    if not 1 <= h <= MAX_IMAGE_SIDE or not 1 <= w <= MAX_IMAGE_SIDE:
        raise ValueError(f"height and width must be in [1, {MAX_IMAGE_SIDE}], got {h} x {w}")
    if not 1 <= threads <= MAX_THREADS and num_threads is not None:
        raise ValueError(f"num_threads must be in [1, {MAX_THREADS}] or None, got {threads}")
    image, depth, triangle_id, barycentrics = _core.render(
        _as_float32("vertices", vertices),
        _as_int32("triangles", triangles),
        _as_float32("attributes", attributes),
        h,
        w,
        background=float(background),
        return_barycentrics=bool(return_barycentrics),
        cull_backfaces=bool(cull_backfaces),
        num_threads=threads,
    )
    return RenderResult(image, depth, triangle_id, barycentrics)

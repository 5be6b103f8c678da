"""Stub of the C++ extension module (bindings.cpp); use the pnccrender package API."""

import numpy as np

MAX_IMAGE_SIDE: int
MAX_COORDINATE: float
SUBPIXEL_BITS: int
MAX_THREADS: int

def render(
    vertices: np.ndarray,
    triangles: np.ndarray,
    attributes: np.ndarray,
    height: int,
    width: int,
    background: float = 0.0,
    return_barycentrics: bool = False,
    cull_backfaces: bool = False,
    num_threads: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    """(image, depth, triangle_id, barycentrics); see the module docstring of pnccrender."""

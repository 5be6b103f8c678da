"""A vectorised PyTorch z-buffer rasterizer: the baseline that bench.py compares against.

Same conventions as pnccrender (pixel centres at integer + 0.5, y down, larger z nearer,
equal depths won by the lower triangle id), but float32 edge functions and an inclusive
"w >= 0" coverage test instead of the exact top-left fill rule, so pixel centres lying exactly
on a shared edge may go to either triangle. Meant for meshes of small triangles (a face model):
every triangle is tested on a window the size of the largest bounding box.
"""

from __future__ import annotations

import torch


def render_torch(
    vertices: torch.Tensor,
    triangles: torch.Tensor,
    attributes: torch.Tensor,
    height: int,
    width: int,
    background: float = 0.0,
    chunk: int = 1,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """vertices: (B, N, 3) float32; triangles: (T, 3) int64; attributes: (N, C) float32.

    Meshes are rendered ``chunk`` at a time (memory grows with chunk x T x window).
    Returns image (B, H, W, C) float32, depth (B, H, W) float32 (-inf where empty) and
    triangle_id (B, H, W) int64 (-1 where empty).
    """
    parts = [
        _render_chunk(vertices[i : i + chunk], triangles, attributes, height, width, background)
        for i in range(0, vertices.shape[0], chunk)
    ]
    return tuple(torch.cat(p) for p in zip(*parts, strict=True))  # type: ignore[return-value]


def _render_chunk(
    vertices: torch.Tensor,
    triangles: torch.Tensor,
    attributes: torch.Tensor,
    height: int,
    width: int,
    background: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    bsz = vertices.shape[0]
    n_tri = triangles.shape[0]
    tri = vertices[:, triangles]  # (B, T, 3 vertices, 3 coords)
    x, y, z = tri[..., 0], tri[..., 1], tri[..., 2]  # (B, T, 3)

    # Pixel windows: first pixel whose centre is >= the bounding box minimum.
    x0 = torch.ceil(x.amin(-1) - 0.5).clamp(0, width - 1).long()
    y0 = torch.ceil(y.amin(-1) - 0.5).clamp(0, height - 1).long()
    x1 = torch.floor(x.amax(-1) - 0.5).clamp(-1, width - 1).long()
    y1 = torch.floor(y.amax(-1) - 0.5).clamp(-1, height - 1).long()
    win_w = int((x1 - x0 + 1).clamp(min=0).max())
    win_h = int((y1 - y0 + 1).clamp(min=0).max())
    if win_w == 0 or win_h == 0:
        empty_depth = torch.full((bsz, height, width), float("-inf"))
        return (
            torch.full((bsz, height, width, attributes.shape[1]), background),
            empty_depth,
            torch.full((bsz, height, width), -1, dtype=torch.long),
        )
    dx = torch.arange(win_w).view(1, 1, 1, -1)
    dy = torch.arange(win_h).view(1, 1, -1, 1)
    px = x0[..., None, None] + dx  # (B, T, 1, win_w)
    py = y0[..., None, None] + dy  # (B, T, win_h, 1)
    inside_box = (px <= x1[..., None, None]) & (py <= y1[..., None, None])
    cx = px.float() + 0.5
    cy = py.float() + 0.5

    def edge(a: int, b: int) -> torch.Tensor:
        xa, ya = x[..., a, None, None], y[..., a, None, None]
        xb, yb = x[..., b, None, None], y[..., b, None, None]
        return (xb - xa) * (cy - ya) - (yb - ya) * (cx - xa)

    w0, w1, w2 = edge(1, 2), edge(2, 0), edge(0, 1)  # (B, T, win_h, win_w)
    area = (w0 + w1 + w2)[..., :1, :1]
    sign = torch.sign(area)
    covered = inside_box & (area != 0) & (w0 * sign >= 0) & (w1 * sign >= 0) & (w2 * sign >= 0)
    b0, b1, b2 = w0 / area, w1 / area, w2 / area
    zc = b0 * z[..., 0, None, None] + b1 * z[..., 1, None, None] + b2 * z[..., 2, None, None]

    batch_index = torch.arange(bsz).view(-1, 1, 1, 1)
    pixel = (batch_index * height + py) * width + px
    pixel = pixel.expand_as(covered)[covered]
    zc = zc[covered]
    tid = torch.arange(n_tri).view(1, -1, 1, 1).expand_as(covered)[covered]

    n_pix = bsz * height * width
    depth = torch.full((n_pix,), float("-inf"))
    depth.scatter_reduce_(0, pixel, zc, reduce="amax")
    front = zc == depth[pixel]
    winner = torch.full((n_pix,), n_tri, dtype=torch.long)
    winner.scatter_reduce_(0, pixel[front], tid[front], reduce="amin")
    chosen = front & (tid == winner[pixel])

    weights = torch.stack([b0[covered], b1[covered], b2[covered]], dim=-1)[chosen]
    chosen_pixel = pixel[chosen]
    corners = triangles[tid[chosen]]  # (P, 3)
    values = (weights[..., None] * attributes[corners]).sum(dim=1)
    image = torch.full((n_pix, attributes.shape[1]), background)
    image[chosen_pixel] = values
    triangle_id = torch.where(winner < n_tri, winner, torch.full_like(winner, -1))
    return (
        image.view(bsz, height, width, -1),
        depth.view(bsz, height, width),
        triangle_id.view(bsz, height, width),
    )

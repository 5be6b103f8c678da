"""The geometric reenactor: moves the photo's own pixels along the 3D model's correspondences.

TorchScript-scriptable; served as the ``reenactor`` model (``export/build_reenactor.py``). Its
inputs are the renders of :class:`reenact.geometric.ReenactorRenderer` (channel layout there).

The renders come at a reduced resolution (h x w = canvas / r, r = 2 by default, read off the
shapes: r = ceil(H / h)); the canvas size comes from ``source_canvas``. For each of K targets, all
in one batch:

1. visibility: a target surface point whose source position is hidden in the source render (its
   source depth lies behind the source z-buffer) is not trusted;
2. the displacement field (target pixel -> source pixel) is the rendered correspondence on the
   face, weighted by WARP_WEIGHT x visibility, handed over to a smooth extension elsewhere: a
   push-pull (normalised-convolution pyramid) fill at reduced resolution (``downsample`` canvas
   pixels a cell), seeded by every visible non-mouth surface pixel and by zero displacement
   beyond ``reach_px`` of the drawn head and on the canvas's outermost cells, so hair, neck and
   background follow and the motion fades to exactly zero far from the face and at the canvas
   edge; the blend of correspondence and extension is formed
   on the render grid and upsampled bilinearly to the canvas (the correspondence is piecewise
   linear, so this is near exact inside triangles);
3. the source canvas is sampled bilinearly (``grid_sample``) at target pixel + displacement, once
   per canvas pixel of the moving box;
4. around the mouth interior the render channels are upsampled to the canvas first, and there,
   pixel by pixel, newly visible interior (not visible in the source) is composited with its
   rendered shading over a softened alpha; interior that the source photo shows is taken from
   the photo. The painted teeth take the colour of the person's own teeth where the source
   photo shows them (the bright, unsaturated pixels under the source's rendered teeth), and a
   default colour otherwise. The mouth channels there come from the mouth detail the renderer
   packs after the K target renders (rendered at canvas resolution: separate teeth with their
   gaps, see :mod:`reenact.geometric`), where target_render holds it; the soft edge blurs the
   paint's alpha, not the teeth;
5. outside the box of the moving region the source is copied unchanged; inside it, zero
   displacement samples pixel centres exactly, so far background equals the source.

Inputs: source_canvas (H, W, 3) uint8, source_render (h, w, C) float32, target_render
(K + n, h, w, C) float32 (C >= 10, layout in :mod:`reenact.reenactors.contract`; n >= 0 slices of
mouth detail after the K renders), target_params (K, 162) float32. Output: (K, H, W, 3) uint8.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch
import torch.nn.functional as F

from reenact.morphable import SCALE_SLICE
from reenact.reenactors.contract import (
    COVERAGE,
    EXPRESSION_SHADE,
    MOUTH_ALPHA,
    MOUTH_DETAIL_CHANNELS,
    MOUTH_DETAIL_MARGIN,
    SRC_X,
    SRC_Y,
    SRC_Z,
    TEETH_SHADE,
    WARP_WEIGHT,
    mouth_detail_window,
)


@dataclass(frozen=True)
class ReenactorConfig:
    """Tunables of :class:`GeometricReenactor` (the one source of their defaults)."""

    downsample: int = 4  # canvas pixels per cell of the extension (push-pull) grid
    levels: int = 6  # push-pull pyramid levels below the extension grid
    smooth_passes: int = 2  # 5x5 box blurs of the filled extension (no crease at the head outline)
    reach_px: int = 64  # displacement fades to exactly zero this far (canvas px) from the head
    occlusion_tolerance_cm: float = 0.1  # a point may lie this far behind the source z-buffer …
    occlusion_soft_cm: float = 0.2  # … and is fully hidden this much further behind
    mouth_soften_px: int = 2  # box-blur radius (canvas px) of the mouth alpha (soft edge)
    mouth_from_source: bool = True  # take interior the source photo shows from the photo
    # painted mouth interior: RGB in [0, 1] of the teeth, the gums and tongue, the mouth socket
    teeth_rgb: tuple[float, float, float] = (0.93, 0.89, 0.80)
    gums_rgb: tuple[float, float, float] = (0.45, 0.20, 0.20)
    cavity_rgb: tuple[float, float, float] = (0.42, 0.20, 0.19)
    teeth_from_photo: bool = True  # paint teeth in the colour the photo's own teeth have …
    teeth_min_pixels: int = 12  # … when at least this many render pixels show them …
    teeth_max_saturation: float = 0.25  # … counting pixels this grey ((max - min) / max) …
    teeth_min_shade: float = 0.3  # … where the source's rendered teeth are lit at least this …
    teeth_min_luma: float = 0.35  # … and the colour found is at least this bright (0..1)
    teeth_skin_tint: float = 0.3  # painted default teeth take this share of the skin's hue
    lip_shadow: float = 0.55  # painted interior darkens by up to this share under the lips …
    lip_shadow_px: int = 4  # … over this many canvas pixels from the edge (the upper lip's
    # shadow reaches twice as far: the light comes from above)
    expression_shading: bool = True  # multiply the face by the EXPRESSION_SHADE ratio, …
    shading_rgb: tuple[float, float, float] = (0.8, 1.0, 1.15)  # … its darkening in each
    # channel weighted by these (skin's shadows are warm: light scattered under the skin is red)


DEFAULTS = ReenactorConfig()
COLOUR_TUNABLES = ("teeth_rgb", "gums_rgb", "cavity_rgb", "shading_rgb")  # held as buffers
NEAR_BLOCK = 4  # cells of the extension grid per cell of the reach dilation grid


class GeometricReenactor(torch.nn.Module):
    """forward(source_canvas (H, W, 3) uint8, source_render (h, w, C) float32,
    target_render (K + n, h, w, C) float32, target_params (K, 162) float32) -> (K, H, W, 3)
    uint8, h x w the render size, n slices of mouth detail (module docstring).

    ``full_frame=True`` selects the export path (``export/export_onnx.py``): the same result
    computed on the whole canvas with static shapes (no box read off the data, no data-sized
    selections, no in-place writes into slices), for tracing to ONNX. It costs more (every
    canvas pixel is warped), and is Python only: scripting compiles the boxed path whatever
    the flag, so the served TorchScript model does not change.
    """

    def __init__(self, config: ReenactorConfig | None = None, full_frame: bool = False) -> None:
        super().__init__()
        config = config or ReenactorConfig()
        self.full_frame = full_frame
        # every scalar tunable becomes an attribute of its name (TorchScript reads attributes);
        # the colours become buffers below
        for field in fields(ReenactorConfig):
            if field.name not in COLOUR_TUNABLES:
                setattr(self, field.name, getattr(config, field.name))
        teeth_rgb, gums_rgb, cavity_rgb = config.teeth_rgb, config.gums_rgb, config.cavity_rgb
        shading_rgb = config.shading_rgb
        # (3, 3) colours 0..255, rows teeth, gums, cavity: the order of the shade channels
        colours = torch.tensor([teeth_rgb, gums_rgb, cavity_rgb], dtype=torch.float32) * 255.0
        self.register_buffer("default_colours", colours)
        self.register_buffer("luma", torch.tensor([0.299, 0.587, 0.114]))
        self.register_buffer("shading_rgb", torch.tensor(shading_rgb).reshape(1, 3, 1, 1))
        # Channel indices of the renders (TorchScript reads module attributes, not globals).
        self.src_x = SRC_X
        self.src_y = SRC_Y
        self.src_z = SRC_Z
        self.coverage = COVERAGE
        self.warp_weight = WARP_WEIGHT
        self.teeth_shade = TEETH_SHADE
        self.mouth_alpha = MOUTH_ALPHA
        self.expression_shade = EXPRESSION_SHADE
        self.detail_channels = MOUTH_DETAIL_CHANNELS
        self.detail_margin = MOUTH_DETAIL_MARGIN
        self.scale_index = SCALE_SLICE.start
        self.near_block = NEAR_BLOCK

    def forward(
        self,
        source_canvas: torch.Tensor,
        source_render: torch.Tensor,
        target_render: torch.Tensor,
        target_params: torch.Tensor,
    ) -> torch.Tensor:
        if not torch.jit.is_scripting() and self.full_frame:  # the export path, traced
            return self._forward_full_frame(
                source_canvas, source_render, target_render, target_params
            )
        k, h, w = target_params.shape[0], target_render.shape[1], target_render.shape[2]
        height, width = source_canvas.shape[0], source_canvas.shape[1]
        detail, detail_box = self._mouth_detail(target_render, k, height, width)
        target_render = target_render[:k]
        r, s, f = self._factors(height, h)
        scale = target_params[:, self.scale_index].reshape(k, 1, 1, 1)
        zbuffer = self._zbuffer(source_render)
        visible, mouth, near, extension = self._extension(
            target_render, zbuffer, scale, height, width
        )

        box = _bounding_box(near.amax(dim=0)[0], 1)
        if box[0] >= box[1]:
            return source_canvas.unsqueeze(0).expand(k, height, width, 3).clone()
        # The moving box on the render, grown by a pixel so that upsampling it to the canvas
        # equals upsampling the whole render, then cut; and on the canvas.
        ry0, ry1 = max(box[0] * s - 1, 0), min(box[1] * s + 1, h)
        rx0, rx1 = max(box[2] * s - 1, 0), min(box[3] * s + 1, w)
        y0, y1 = box[0] * f, min(box[1] * f, height)
        x0, x1 = box[2] * f, min(box[3] * f, width)
        shift = _upsample_window(extension, s, ry0, ry1, rx0, rx1)  # (K, 2, rows, cols)
        trusted = _upsample_window(visible, s, ry0, ry1, rx0, rx1)
        crop = target_render[:, ry0:ry1, rx0:rx1].permute(0, 3, 1, 2)  # (K, C, rows, cols)
        moved = self._displacement(crop, shift, trusted, ry0, rx0, r)  # (K, 2, rows, cols)
        oy, ox = y0 - ry0 * r, x0 - rx0 * r  # the canvas box in the upsampled crop
        moved = _upsample_crop(moved, r, oy, ox, y1 - y0, x1 - x0)  # (K, 2, y1 - y0, x1 - x0)
        # The mouth interior at canvas resolution: there, whether the photo or the paint shows
        # is decided pixel by pixel (a sharp visibility test) on the upsampled render.
        mouth_box, own = self._mouth_box(mouth, f, y0, x0, y1 - y0, x1 - x0)
        my0, my1, mx0, mx1 = mouth_box[0], mouth_box[1], mouth_box[2], mouth_box[3]
        inside = crop[:, :, :0, :0]
        if my0 < my1:
            window = (my0 + oy, my1 + oy, mx0 + ox, mx1 + ox)
            inside = _upsample_window(crop, r, window[0], window[1], window[2], window[3])
            self._insert_detail(inside, detail, detail_box, y0 + my0, x0 + mx0)
            sharp = self._visibility(inside, zbuffer, scale, height, width)
            interior = (inside[:, self.mouth_alpha : self.mouth_alpha + 1] > 0.0) & own
            seen = _upsample_window(trusted, r, window[0], window[1], window[2], window[3])
            seen = torch.where(interior, sharp, seen)
            there = _upsample_window(shift, r, window[0], window[1], window[2], window[3])
            patch = moved[:, :, my0:my1, mx0:mx1]
            sharper = self._displacement(inside, there, seen, y0 + my0, x0 + mx0, 1)
            patch.copy_(torch.where(own, sharper, patch))  # own: as the target were alone
            trusted = seen
        warped = self._sample(source_canvas, self._grid(moved, y0, x0, height, width))
        if self.expression_shading:
            self._shade(warped, crop, r, oy, ox)
        if my0 < my1:
            colours = self._mouth_colours(source_canvas, source_render)
            self._paint_mouth(warped, inside, trusted, mouth_box, own, colours)
        pixels = _interleaved(warped.add_(0.5).clamp_(0.0, 255.0).to(torch.uint8))
        if y1 - y0 == height and x1 - x0 == width:
            return pixels
        out = _source_around(source_canvas, k, y0, y1, x0, x1)
        out[:, y0:y1, x0:x1] = pixels
        return out

    def _mouth_detail(
        self, target_render: torch.Tensor, k: int, height: int, width: int
    ) -> tuple[torch.Tensor, list[int]]:
        """The mouth at canvas resolution that the renderer packs after the K target renders
        (reenact.geometric, "Mouth detail"): (K, MOUTH_DETAIL_CHANNELS, rows, cols) float32 and
        its window [row0, row1, col0, col1) on the canvas; an empty window when target_render
        (K + n, h, w, C) holds none (n = 0: renders without it, which stay valid)."""
        h = target_render.shape[1]
        r = (height + h - 1) // h
        alpha = target_render[:k, :, :, self.mouth_alpha]
        box = mouth_detail_window(alpha, r, height, width, self.detail_margin)
        rows, cols = box[1] - box[0], box[3] - box[2]
        size = k * rows * cols * self.detail_channels
        extra = target_render[k:]
        if rows <= 0 or cols <= 0 or extra.numel() < size:
            return extra[:0, :0, :0, :0].reshape(0, 0, 0, 0), [0, 0, 0, 0]
        detail = extra.reshape(-1)[:size].reshape(k, rows, cols, self.detail_channels)
        return detail.permute(0, 3, 1, 2), box

    def _mouth_detail_static(
        self, target_render: torch.Tensor, k: int, height: int, width: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`_mouth_detail` on the whole canvas with static shapes (the export path): the
        detail (K, MOUTH_DETAIL_CHANNELS, H, W) float32 gathered from the slices after the K
        renders (zero outside its window) and where it holds data, (1, 1, H, W) bool. The
        window of :func:`reenact.geometric.mouth_detail_window` is computed with tensors."""
        r = (height + target_render.shape[1] - 1) // target_render.shape[1]
        drawn = (target_render[:k, :, :, self.mouth_alpha] > 0.0).to(torch.float32).amax(dim=0)
        y0, y1 = _window_span(drawn.amax(dim=1), self.detail_margin, r, height)
        x0, x1 = _window_span(drawn.amax(dim=0), self.detail_margin, r, width)
        rows, cols = y1 - y0, x1 - x0
        extra = target_render[k:].reshape(-1)
        extra = torch.cat([extra, torch.zeros(1, dtype=extra.dtype, device=extra.device)])
        size = rows * cols * self.detail_channels * k
        ys = torch.arange(height, device=extra.device).reshape(1, 1, height, 1)
        xs = torch.arange(width, device=extra.device).reshape(1, 1, 1, width)
        window = (ys >= y0) & (ys < y1) & (xs >= x0) & (xs < x1) & (extra.shape[0] > size)
        targets = torch.arange(k, device=extra.device).reshape(k, 1, 1, 1)
        channels = torch.arange(self.detail_channels, device=extra.device).reshape(1, -1, 1, 1)
        index = ((targets * rows + ys - y0) * cols + xs - x0) * self.detail_channels + channels
        index = torch.where(window, index, torch.zeros_like(index))
        detail = extra.index_select(0, index.reshape(-1)).reshape(index.shape)
        return torch.where(window, detail, torch.zeros_like(detail)), window

    def _insert_detail(
        self, inside: torch.Tensor, detail: torch.Tensor, box: list[int], row0: int, col0: int
    ) -> None:
        """Overwrite the mouth shades (TEETH_SHADE .. CAVITY_SHADE) of ``inside`` (K, C, rows,
        cols), the render upsampled to the canvas at row0, col0, in place with ``detail``
        (K, MOUTH_DETAIL_CHANNELS, ...) at canvas window ``box`` where the two overlap and the
        upsampled render shows the mouth interior (MOUTH_ALPHA > 0: the detail does not draw
        the skin that hides the interior elsewhere; the outline stays the render's)."""
        a0, a1 = max(row0, box[0]), min(row0 + inside.shape[2], box[1])
        b0, b1 = max(col0, box[2]), min(col0 + inside.shape[3], box[3])
        if a0 >= a1 or b0 >= b1:
            return
        part = detail[:, :, a0 - box[0] : a1 - box[0], b0 - box[2] : b1 - box[2]]
        window = inside[:, :, a0 - row0 : a1 - row0, b0 - col0 : b1 - col0]
        current = window[:, self.teeth_shade : self.teeth_shade + self.detail_channels]
        alpha = window[:, self.mouth_alpha : self.mouth_alpha + 1]
        current.copy_(torch.where(alpha > 0.0, part, current))  # the render's interior, its ramp

    def _factors(self, height: int, h: int) -> tuple[int, int, int]:
        """(r, s, f): canvas pixels per render pixel, render pixels per extension-grid cell and
        canvas pixels per cell (f = r s), for a canvas ``height`` rows high rendered in h."""
        r = (height + h - 1) // h  # render pixels are r x r canvas pixels
        s = max(self.downsample // r, 1)
        return r, s, s * r

    def _extension(
        self,
        target_render: torch.Tensor,
        zbuffer: torch.Tensor,
        scale: torch.Tensor,
        height: int,
        width: int,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """On the extension grid (K, *, hl, wl) of a height x width canvas, from target_render
        (K, h, w, C) float32, the source z-buffer (1, 1, h, w) and each target's scale
        (K, 1, 1, 1): the visibility (K, 1, hl, wl) float32, the mouth alpha (K, 1, hl, wl)
        float32, ``near`` (K, 1, hl, wl) bool (where the motion may be nonzero) and the filled,
        smoothed displacement (K, 2, hl, wl) float32 in canvas pixels."""
        r, s, f = self._factors(height, target_render.shape[1])
        # (K, C, hl, wl), contiguous: every channel below is read from it (a strided read of
        # one channel would fetch the cache lines of all of them)
        low = target_render[:, s // 2 :: s, s // 2 :: s].permute(0, 3, 1, 2).contiguous()
        visible = self._visibility(low, zbuffer, scale, height, width)  # (K, 1, hl, wl)
        coverage = low[:, self.coverage : self.coverage + 1]
        mouth = low[:, self.mouth_alpha : self.mouth_alpha + 1]
        low_pixels = _pixel_grid(low.shape[2], low.shape[3], low.device) * float(f)
        low_pixels += r * (s // 2) + 0.5 * (r - 1)  # the canvas position of each sample
        displacement = (low[:, self.src_x : self.src_y + 1] - low_pixels) * coverage
        seeds = coverage * visible * (1.0 - mouth)
        near = self._near(coverage, f)  # (K, 1, hl, wl)
        weight = torch.where(near, seeds, torch.ones_like(seeds))  # far: zero displacement
        extension = _push_pull(displacement * seeds, weight, self.levels)  # (K, 2, hl, wl)
        for _ in range(self.smooth_passes):
            extension = _box_blur(extension, 2, self.full_frame)
        return visible, mouth, near, extension

    def _forward_full_frame(
        self,
        source_canvas: torch.Tensor,
        source_render: torch.Tensor,
        target_render: torch.Tensor,
        target_params: torch.Tensor,
    ) -> torch.Tensor:
        """``forward`` computed on the whole canvas with static shapes (the ONNX export path:
        no box read off the data, no data-sized selection, no in-place writes into slices).
        Same inputs and output; the moving box becomes a mask, outside which the source is
        kept, and the mouth colours come from :meth:`_mouth_colours_static`."""
        height, width = source_canvas.shape[0], source_canvas.shape[1]
        k = target_params.shape[0]
        detail, has_detail = self._mouth_detail_static(target_render, k, height, width)
        target_render = target_render[:k]
        h, w = target_render.shape[1], target_render.shape[2]
        r, s, f = self._factors(height, h)
        scale = target_params[:, self.scale_index].reshape(-1, 1, 1, 1)
        zbuffer = self._zbuffer(source_render)
        visible, mouth, near, extension = self._extension(
            target_render, zbuffer, scale, height, width
        )
        moving = _box_mask(near.to(torch.float32).amax(dim=0, keepdim=True), 1)  # (1, 1, hl, wl)
        moving = _upsample_nearest(moving.to(torch.float32), f)[:, :, :height, :width] > 0.0
        shift = _upsample_crop(extension, s, 0, 0, h, w)  # (K, 2, h, w)
        trusted = _upsample_crop(visible, s, 0, 0, h, w)
        render = target_render.permute(0, 3, 1, 2)  # (K, C, h, w)
        moved = self._displacement(render, shift, trusted, 0, 0, r)
        moved = _upsample_crop(moved, r, 0, 0, height, width)  # (K, 2, H, W)
        own = _dilate((mouth > 0.0).to(torch.float32), 2, 2, True)  # (K, 1, hl, wl)
        # where the boxed path handles the mouth (_mouth_box), as a mask: its blurs and its
        # lip shadow start at that window's edges
        window = _upsample_nearest(_box_mask(own.amax(dim=0, keepdim=True), 0).float(), f)
        window = window[:, :, :height, :width] * moving.to(torch.float32)  # (1, 1, H, W)
        own = _upsample_nearest(own, f)[:, :, :height, :width] > 0.0  # (K, 1, H, W)
        inside = _upsample_crop(render, r, 0, 0, height, width)  # (K, C, H, W)
        t0, t1 = self.teeth_shade, self.teeth_shade + self.detail_channels
        shown = has_detail & (inside[:, self.mouth_alpha : self.mouth_alpha + 1] > 0.0)
        shades = torch.where(shown, detail, inside[:, t0:t1])
        inside = torch.cat([inside[:, :t0], shades, inside[:, t1:]], dim=1)
        sharp = self._visibility(inside, zbuffer, scale, height, width)
        interior = (inside[:, self.mouth_alpha : self.mouth_alpha + 1] > 0.0) & own
        seen = torch.where(interior, sharp, _upsample_crop(trusted, r, 0, 0, height, width))
        there = _upsample_crop(shift, r, 0, 0, height, width)
        sharper = self._displacement(inside, there, seen, 0, 0, 1)
        moved = torch.where(own, sharper, moved)
        warped = self._sample(source_canvas, self._grid(moved, 0, 0, height, width))
        if self.expression_shading:
            factor = self._shading_factor(
                render[:, self.expression_shade : self.expression_shade + 1]
            )
            warped = warped * _upsample_crop(factor, r, 0, 0, height, width)
        colours = self._mouth_colours_static(source_canvas, source_render)
        warped = self._painted(warped, inside, seen, own, window, colours)
        result = (warped + 0.5).clamp(0.0, 255.0).to(torch.uint8).permute(0, 2, 3, 1)
        return torch.where(moving.permute(0, 2, 3, 1), result, source_canvas.unsqueeze(0))

    def _painted(
        self,
        warped: torch.Tensor,
        inside: torch.Tensor,
        visible: torch.Tensor,
        own: torch.Tensor,
        window: torch.Tensor,
        colours: torch.Tensor,
    ) -> torch.Tensor:
        """``warped`` (K, 3, H, W) with the rendered mouth interior composited in, as
        :meth:`_paint_mouth` but on the whole canvas and not in place. inside: (K, C, H, W)
        render channels at canvas resolution; visible, own: (K, 1, H, W); window: (1, 1, H, W)
        float32, 1 in the mouth box of the boxed path, whose blurs see only that box."""
        shades = inside[:, self.teeth_shade : self.mouth_alpha + 1]
        mouth = shades * own * window
        if self.mouth_from_source:
            mouth = mouth * (1.0 - visible)
        soft = mouth
        if self.mouth_soften_px > 0:
            soft = _blur_within(mouth, window, self.mouth_soften_px)
        paint = self._mouth_paint(shades, mouth, soft, colours)
        alpha = inside[:, self.mouth_alpha : self.mouth_alpha + 1]
        paint = paint * self._lip_shadow_within(alpha, window)
        return warped * (1.0 - soft[:, 3:4]) + paint

    def _lip_shadow_within(self, alpha: torch.Tensor, window: torch.Tensor) -> torch.Tensor:
        """:meth:`_lip_shadow` of the box ``window`` (1, 1, H, W) float32 of the canvas-sized
        alpha (K, 1, H, W), with static shapes (the box's top row is read at its index)."""
        radius = self.lip_shadow_px
        if radius <= 0 or self.lip_shadow <= 0.0:
            return torch.ones_like(alpha)
        inner = _blur_within((alpha > 0.5).to(alpha.dtype) * window, window, radius)
        rows = torch.arange(alpha.shape[2], device=alpha.device)
        top = window.amax(dim=3)[0, 0].argmax()  # the box's first row (window is 0 or 1)
        lowered = inner.index_select(2, torch.maximum(rows - radius, top))
        return 1.0 - self.lip_shadow * (1.0 - torch.minimum(inner, lowered))

    def _mouth_colours_static(
        self, source_canvas: torch.Tensor, source_render: torch.Tensor
    ) -> torch.Tensor:
        """:meth:`_mouth_colours` with static shapes: every selection is a mask over all
        h w render pixels, each median a sort of the masked values (the rest +inf) read at the
        lower median's index, each branch a ``torch.where``. Returns (3, 3) 0..255."""
        colours = self.default_colours
        teeth = colours[0]
        skin = self._skin_colour_static(source_canvas, source_render)
        peak = skin.amax()
        hue = skin / torch.where(peak > 0.0, peak, torch.ones_like(peak))
        tint = 1.0 - self.teeth_skin_tint + self.teeth_skin_tint * hue
        tinted = teeth * tint
        tinted = tinted * ((teeth @ self.luma) / (tinted @ self.luma).clamp_min(1.0))
        teeth = torch.where(peak > 0.0, tinted, teeth)
        if self.teeth_from_photo:
            shade = source_render[:, :, self.teeth_shade].reshape(-1)
            alpha = source_render[:, :, self.mouth_alpha].reshape(-1)
            rgb = self._photo_everywhere(source_canvas, source_render)  # (h w, 3)
            brightest = rgb.amax(dim=1)
            grey = (brightest - rgb.amin(dim=1)) <= self.teeth_max_saturation * brightest
            pick = (shade > self.teeth_min_shade) & (alpha > 0.99) & grey
            luma = rgb @ self.luma
            bright = pick & (luma >= _masked_median(luma.unsqueeze(1), pick)[0])
            lit = _masked_median(shade.unsqueeze(1), bright)[0]
            colour = _masked_median(rgb, bright) / lit.clamp_min(0.1)
            colour = colour * (255.0 / colour.amax().clamp_min(255.0))  # keep the hue
            found = (
                (pick.sum() >= self.teeth_min_pixels)
                & ((colour @ self.luma) >= self.teeth_min_luma * 255.0)
                & (colour[2] <= colour[0])
            )
            teeth = torch.where(found, colour, teeth)
        return torch.cat([teeth.unsqueeze(0), colours[1:]])

    def _photo_everywhere(
        self, source_canvas: torch.Tensor, source_render: torch.Tensor
    ) -> torch.Tensor:
        """(h w, 3) float32 photo colours at every source-render pixel (``_photo_at`` of all)."""
        xy = source_render[:, :, self.src_x : self.src_y + 1].reshape(-1, 2)  # canvas pixels
        height, width = source_canvas.shape[0], source_canvas.shape[1]
        cols = xy[:, 0].round().long().clamp(0, width - 1)
        rows = xy[:, 1].round().long().clamp(0, height - 1)
        pixels = source_canvas.reshape(-1, 3)
        return pixels.index_select(0, rows * width + cols).to(torch.float32)

    def _skin_colour_static(
        self, source_canvas: torch.Tensor, source_render: torch.Tensor
    ) -> torch.Tensor:
        """:meth:`_skin_colour` with static shapes: (3,) float32, zeros when none is drawn."""
        weight = source_render[:, :, self.warp_weight].reshape(-1)
        alpha = source_render[:, :, self.mouth_alpha].reshape(-1)
        pick = (weight > 0.99) & (alpha <= 0.0)
        rgb = self._photo_everywhere(source_canvas, source_render)
        luma = rgb @ self.luma
        chosen = pick & (luma >= _masked_quantile(luma, pick, 0.25))
        count = chosen.sum().to(torch.float32)
        total = (rgb * chosen.unsqueeze(1).to(torch.float32)).sum(dim=0)
        return torch.where(count > 0.0, total / count.clamp_min(1.0), torch.zeros_like(total))

    def _shade(self, warped: torch.Tensor, crop: torch.Tensor, r: int, oy: int, ox: int) -> None:
        """Multiply ``warped`` (K, 3, rows, cols), the canvas box at (oy, ox) of the r-times
        upsampled render crop (K, C, h', w'), by 1 + EXPRESSION_SHADE (its darkening weighted
        per channel by ``shading_rgb``), in place, only inside the box where some target's
        shading changes (elsewhere the factor is exactly 1)."""
        change = crop[:, self.expression_shade : self.expression_shade + 1]
        box = _bounding_box((change != 0.0).amax(dim=0)[0], 1)
        rows, cols = warped.shape[2], warped.shape[3]
        by0, by1 = max(box[0] * r - oy, 0), min(box[1] * r - oy, rows)
        bx0, bx1 = max(box[2] * r - ox, 0), min(box[3] * r - ox, cols)
        if by0 >= by1 or bx0 >= bx1:
            return
        # the factor of the render cells under the box only (the cells _upsample_window reads)
        row0, row1, col0, col1 = by0 + oy, by1 + oy, bx0 + ox, bx1 + ox
        ly0, ly1, lx0, lx1 = _window_cells(change, r, row0, row1, col0, col1)
        cells = self._shading_factor(change[:, :, ly0:ly1, lx0:lx1])
        factor = _upsample_crop(cells, r, row0 - ly0 * r, col0 - lx0 * r, by1 - by0, bx1 - bx0)
        warped[:, :, by0:by1, bx0:bx1].mul_(factor)

    def _sample(self, source_canvas: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
        """The source canvas (H, W, 3) uint8 sampled bilinearly at ``grid`` (K, h', w', 2):
        (K, 3, h', w') float32."""
        k, height, width = grid.shape[0], source_canvas.shape[0], source_canvas.shape[1]
        image = source_canvas.permute(2, 0, 1).unsqueeze(0).to(torch.float32)  # (1, 3, H, W)
        return F.grid_sample(
            image.expand(k, 3, height, width),
            grid,
            mode="bilinear",
            padding_mode="border",
            align_corners=False,
        )

    def _shading_factor(self, change: torch.Tensor) -> torch.Tensor:
        """EXPRESSION_SHADE (K, 1, h, w) → the factor the warped face is multiplied by,
        (K, 3, h, w): 1 + the change, its darkening weighted per channel by ``shading_rgb``."""
        return change.clamp_min(0.0) + change.clamp_max(0.0) * self.shading_rgb + 1.0

    def _zbuffer(self, source_render: torch.Tensor) -> torch.Tensor:
        """(1, 1, h, w) source depth where drawn, far below any surface elsewhere."""
        depth = source_render[:, :, self.src_z]
        drawn = source_render[:, :, self.coverage] > 0.5
        return torch.where(drawn, depth, torch.full_like(depth, -1.0e6)).unsqueeze(0).unsqueeze(0)

    def _visibility(
        self,
        low: torch.Tensor,
        zbuffer: torch.Tensor,
        scale: torch.Tensor,
        height: int,
        width: int,
    ) -> torch.Tensor:
        """(K, 1, h, w) in [0, 1]: 1 where the target's surface point is not hidden in the
        source render (its source depth is not behind the source z-buffer there).
        low: (K, C, h, w) render channels at the points to test; zbuffer: (1, 1, h', w') on the
        render grid of a height x width canvas."""
        k = low.shape[0]
        grid = _normalised(low[:, self.src_x : self.src_y + 1].permute(0, 2, 3, 1), height, width)
        seen = F.grid_sample(
            zbuffer.expand(k, 1, zbuffer.shape[2], zbuffer.shape[3]),
            grid,
            mode="bilinear",
            padding_mode="border",
            align_corners=False,
        )
        behind = seen - low[:, self.src_z : self.src_z + 1] - self.occlusion_tolerance_cm * scale
        return 1.0 - (behind / (self.occlusion_soft_cm * scale)).clamp(0.0, 1.0)

    def _near(self, coverage: torch.Tensor, cell: int) -> torch.Tensor:
        """(K, 1, h, w) bool: within about ``reach_px`` of the target's drawn head. Dilated on a
        grid ``near_block`` times coarser than ``coverage`` (K, 1, h, w), whose cells are
        ``cell`` canvas pixels: large kernels are slow."""
        h, w = coverage.shape[2], coverage.shape[3]
        coarse = F.max_pool2d(coverage, self.near_block, stride=self.near_block, ceil_mode=True)
        radius = max(1, -(-self.reach_px // (cell * self.near_block)))
        coarse = _dilate(coarse, radius, radius, self.full_frame)
        near = _upsample_nearest(coarse, self.near_block)[:, :, :h, :w] > 0.0
        # The canvas's outermost cells anchor the motion at zero: a canvas cut tight around a
        # close-up then meets the rest of the photo without a seam when pasted back.
        rows = torch.arange(h, device=near.device)
        cols = torch.arange(w, device=near.device)
        inner_rows = ((rows >= 1) & (rows < h - 1)).reshape(1, 1, h, 1)
        inner_cols = ((cols >= 1) & (cols < w - 1)).reshape(1, 1, 1, w)
        return near & inner_rows & inner_cols

    def _displacement(
        self,
        crop: torch.Tensor,
        shift: torch.Tensor,
        visible: torch.Tensor,
        row0: int,
        col0: int,
        r: int,
    ) -> torch.Tensor:
        """(K, 2, rows, cols) displacement (canvas pixels) of the render crop at row0, col0: the
        correspondence where trusted, the smooth extension elsewhere. crop: (K, C, rows, cols)
        render; shift: (K, 2, rows, cols) extension; visible: (K, 1, rows, cols); r: canvas
        pixels per render pixel."""
        pixels = _pixel_grid(crop.shape[2], crop.shape[3], crop.device)
        pixels[:, 0] += float(col0)
        pixels[:, 1] += float(row0)
        pixels = pixels.mul_(float(r)).add_(0.5 * (r - 1))  # canvas positions of the samples
        corr = crop[:, self.src_x : self.src_y + 1] - pixels
        trust = crop[:, self.warp_weight : self.warp_weight + 1]
        if self.mouth_from_source:
            trust = trust + crop[:, self.mouth_alpha : self.mouth_alpha + 1]
        return torch.lerp(shift, corr, trust * visible)

    def _grid(self, moved: torch.Tensor, y0: int, x0: int, height: int, width: int) -> torch.Tensor:
        """(K, h', w', 2) grid_sample grid of the canvas box at row y0, column x0 displaced by
        ``moved`` (K, 2, h', w') canvas pixels."""
        scale, offset = _normaliser(height, width, moved.device)
        scale, offset = scale.reshape(1, 2, 1, 1), offset.reshape(1, 2, 1, 1)
        pixels = _pixel_grid(moved.shape[2], moved.shape[3], moved.device)
        pixels[:, 0] += float(x0)
        pixels[:, 1] += float(y0)
        start = torch.addcmul(offset, pixels, scale)
        return torch.addcmul(start, moved, scale).permute(0, 2, 3, 1)

    def _mouth_box(
        self, low_mouth: torch.Tensor, s: int, y0: int, x0: int, rows: int, cols: int
    ) -> tuple[list[int], torch.Tensor]:
        """Where the mouth interior is handled: [row0, row1, col0, col1) in the canvas box at
        row y0, column x0 (rows x cols), empty (row0 >= row1) when no target shows interior, and
        each target's own part of that box, (K, 1, row1 - row0, col1 - col0) bool: the
        extension-grid cells (s x s canvas pixels) with interior, grown by two cells (so a result
        never depends on the other targets of the batch). low_mouth: (K, 1, h, w) mouth alpha on
        the extension grid."""
        drawn = (low_mouth > 0.0).to(torch.float32)
        # the box of the cells grown by two is the cells' box grown by two; and within it the
        # growth sees every cell with interior, so it is computed there only
        box = _bounding_box(drawn.amax(dim=0)[0], 2)
        my0, my1 = max(box[0] * s - y0, 0), min(box[1] * s - y0, rows)
        mx0, mx1 = max(box[2] * s - x0, 0), min(box[3] * s - x0, cols)
        if box[0] >= box[1] or my0 >= my1 or mx0 >= mx1:
            return [0, 0, 0, 0], drawn[:, :, :0, :0] > 0.0
        cells = _dilate(drawn[:, :, box[0] : box[1], box[2] : box[3]], 2, 2)
        mask = _upsample_nearest(cells, s)
        oy, ox = my0 + y0 - box[0] * s, mx0 + x0 - box[2] * s
        return [my0, my1, mx0, mx1], mask[:, :, oy : oy + my1 - my0, ox : ox + mx1 - mx0] > 0.0

    def _mouth_colours(
        self, source_canvas: torch.Tensor, source_render: torch.Tensor
    ) -> torch.Tensor:
        """(3, 3) colours 0..255 of teeth, gums and cavity: the defaults, the teeth's tinted
        towards the skin's hue (the photo's white balance: teeth next to warm skin are warm, on a
        grey photo grey), and replaced by the photo's own where the source shows teeth (median
        of the brighter half of the grey pixels under the source's lit rendered teeth, divided
        by their shade) and that colour is bright enough to be teeth (not shadow or cavity under
        a misplaced fit) and not bluer than red (a cool band there reads as braces).
        source_canvas: (H, W, 3) uint8; source_render: (h, w, C) float32."""
        colours = self.default_colours.clone()
        skin = self._skin_colour(source_canvas, source_render)
        if skin.amax() > 0.0:
            hue = skin / skin.amax()
            tint = 1.0 - self.teeth_skin_tint + self.teeth_skin_tint * hue
            tinted = colours[0] * tint
            colours[0] = tinted * ((colours[0] @ self.luma) / (tinted @ self.luma).clamp_min(1.0))
        if not self.teeth_from_photo:
            return colours
        shade = source_render[:, :, self.teeth_shade]
        pick = (shade > self.teeth_min_shade) & (source_render[:, :, self.mouth_alpha] > 0.99)
        rgb, lit = self._photo_at(source_canvas, source_render, pick), shade[pick]
        brightest = rgb.amax(dim=1)
        grey = (brightest - rgb.amin(dim=1)) <= self.teeth_max_saturation * brightest
        rgb, lit = rgb[grey], lit[grey]
        if rgb.shape[0] < self.teeth_min_pixels:
            return colours
        luma = rgb @ self.luma
        bright = luma >= luma.median()
        colour = rgb[bright].median(dim=0).values / lit[bright].median().clamp_min(0.1)
        colour = colour * (255.0 / colour.amax().clamp_min(255.0))  # keep the hue
        bright_enough = float(colour @ self.luma) >= self.teeth_min_luma * 255.0
        if bright_enough and float(colour[2]) <= float(colour[0]):
            colours[0] = colour
        return colours

    def _photo_at(
        self, source_canvas: torch.Tensor, source_render: torch.Tensor, pick: torch.Tensor
    ) -> torch.Tensor:
        """(n, 3) float32 photo colours at the source-render pixels ``pick`` (h, w) bool."""
        xy = source_render[:, :, self.src_x : self.src_y + 1][pick]  # (n, 2) canvas pixels
        cols = xy[:, 0].round().long().clamp(0, source_canvas.shape[1] - 1)
        rows = xy[:, 1].round().long().clamp(0, source_canvas.shape[0] - 1)
        return source_canvas[rows, cols].to(torch.float32)

    def _skin_colour(
        self, source_canvas: torch.Tensor, source_render: torch.Tensor
    ) -> torch.Tensor:
        """(3,) float32 mean photo colour 0..255 of the source's front face (full warp weight,
        no mouth interior, no eyes: the brighter three quarters), zeros when none is drawn."""
        weight = source_render[:, :, self.warp_weight]
        pick = (weight > 0.99) & (source_render[:, :, self.mouth_alpha] <= 0.0)
        rgb = self._photo_at(source_canvas, source_render, pick)
        if rgb.shape[0] == 0:
            return torch.zeros(3, dtype=torch.float32, device=source_canvas.device)
        luma = rgb @ self.luma
        return rgb[luma >= torch.quantile(luma, 0.25)].mean(dim=0)

    def _paint_mouth(
        self,
        warped: torch.Tensor,
        inside: torch.Tensor,
        visible: torch.Tensor,
        box: list[int],
        own: torch.Tensor,
        colours: torch.Tensor,
    ) -> None:
        """Composite the rendered mouth interior that the source does not show into ``warped``
        (K, 3, h', w'), in place, over a softened alpha, inside ``box`` and ``own`` (see
        _mouth_box). inside: (K, C, rows, cols) render channels upsampled to the canvas in the
        box; visible: (K, 1, rows, cols); colours: (3, 3) 0..255 of the shade channels."""
        my0, my1, mx0, mx1 = box[0], box[1], box[2], box[3]
        if my0 >= my1:
            return
        shades = inside[:, self.teeth_shade : self.mouth_alpha + 1]
        mouth = shades * own
        if self.mouth_from_source:
            mouth = mouth * (1.0 - visible)
        soft = _box_blur(mouth, self.mouth_soften_px) if self.mouth_soften_px > 0 else mouth
        paint = self._mouth_paint(shades, mouth, soft, colours)
        paint.mul_(self._lip_shadow(inside[:, self.mouth_alpha : self.mouth_alpha + 1]))
        region = warped[:, :, my0:my1, mx0:mx1]
        region.mul_(1.0 - soft[:, 3:4]).add_(paint)

    def _mouth_paint(
        self, shades: torch.Tensor, mouth: torch.Tensor, soft: torch.Tensor, colours: torch.Tensor
    ) -> torch.Tensor:
        """(K, 3, rows, cols) premultiplied paint of the mouth interior: the softened paint
        (``soft``, the box mean of ``mouth``, the shades and alpha (K, 4, rows, cols) times
        where to paint) at the edge, and where painting is certain the sharp colour of
        ``shades`` times the softened alpha: the soft edge does not blur the teeth's gaps.
        colours: (3, 3) 0..255 of the shade channels."""
        blurred = torch.einsum("kmhw,mc->kchw", soft[:, 0:3], colours)
        sharp = torch.einsum("kmhw,mc->kchw", shades[:, 0:3], colours) * soft[:, 3:4]
        return torch.lerp(blurred, sharp, mouth[:, 3:4].clamp(0.0, 1.0))

    def _lip_shadow(self, alpha: torch.Tensor) -> torch.Tensor:
        """(K, 1, rows, cols) factor in [1 - lip_shadow, 1] on the painted interior: darker
        near the lips, most under the upper lip (the box mean of the interior alpha (K, 1,
        rows, cols), taken ``lip_shadow_px`` higher up, so the top edge's shadow reaches
        further)."""
        radius = self.lip_shadow_px
        if radius <= 0 or self.lip_shadow <= 0.0:
            return torch.ones_like(alpha)
        inner = _box_blur((alpha > 0.5).to(alpha.dtype), radius)
        top = inner[:, :, :1].expand(-1, -1, radius, -1)
        lowered = torch.cat([top, inner], dim=2)[:, :, : alpha.shape[2]]
        return 1.0 - self.lip_shadow * (1.0 - torch.minimum(inner, lowered))


def _window_sum(x: torch.Tensor, radius: int, dim: int, traceable: bool = False) -> torch.Tensor:
    """Sum over a window of 2 radius + 1 cells along dim 2 or 3 of (K, D, h, w), zero outside.
    (Faster on the CPU than ``avg_pool2d`` / ``max_pool2d`` with stride 1.) ``traceable``: the
    same sums, in window order, from shifted slices (the ONNX exporter cannot take ``unfold``
    when a size is dynamic)."""
    size = 2 * radius + 1
    padded = F.pad(x, [0, 0, radius, radius] if dim == 2 else [radius, radius])
    if not traceable:
        return padded.unfold(dim, size, 1).sum(-1)
    n = x.shape[dim]
    total = padded.narrow(dim, 0, n)
    for offset in range(1, size):
        total = total + padded.narrow(dim, offset, n)
    return total


def _window_max(x: torch.Tensor, radius: int, dim: int, traceable: bool = False) -> torch.Tensor:
    """Max over a window of 2 radius + 1 cells along dim 2 or 3 of (K, D, h, w) >= 0
    (``traceable``: see _window_sum)."""
    size = 2 * radius + 1
    padded = F.pad(x, [0, 0, radius, radius] if dim == 2 else [radius, radius])
    if not traceable:
        return padded.unfold(dim, size, 1).amax(-1)
    n = x.shape[dim]
    peak = padded.narrow(dim, 0, n)
    for offset in range(1, size):
        peak = torch.maximum(peak, padded.narrow(dim, offset, n))
    return peak


def _dilate(x: torch.Tensor, radius_y: int, radius_x: int, traceable: bool = False) -> torch.Tensor:
    """``max_pool2d`` with stride 1 and a (2 radius_y + 1) x (2 radius_x + 1) kernel of
    (K, D, h, w) >= 0 (``traceable``: see _window_sum)."""
    return _window_max(_window_max(x, radius_y, 2, traceable), radius_x, 3, traceable)


def _box_blur(x: torch.Tensor, radius: int, traceable: bool = False) -> torch.Tensor:
    """(2 radius + 1)^2 box mean of (K, D, h, w) over the cells inside the image (as
    ``avg_pool2d(..., count_include_pad=False)``; ``traceable``: see _window_sum)."""
    # the count of cells inside, rows times columns (small integers: exact)
    rows = torch.ones(1, 1, x.shape[2], 1, dtype=x.dtype, device=x.device)
    cols = torch.ones(1, 1, 1, x.shape[3], dtype=x.dtype, device=x.device)
    count = _window_sum(rows, radius, 2, traceable) * _window_sum(cols, radius, 3, traceable)
    return _window_sum(_window_sum(x, radius, 2, traceable), radius, 3, traceable) / count


def _upsample_window(
    low: torch.Tensor, factor: int, row0: int, row1: int, col0: int, col1: int
) -> torch.Tensor:
    """Rows [row0, row1), columns [col0, col1) of the bilinear ``factor`` x upsampling of the
    whole (K, D, h, w), computed from the cells around that window only."""
    ly0, ly1, lx0, lx1 = _window_cells(low, factor, row0, row1, col0, col1)
    return _upsample_crop(
        low[:, :, ly0:ly1, lx0:lx1],
        factor,
        row0 - ly0 * factor,
        col0 - lx0 * factor,
        row1 - row0,
        col1 - col0,
    )


def _window_cells(
    low: torch.Tensor, factor: int, row0: int, row1: int, col0: int, col1: int
) -> list[int]:
    """[row0, row1, col0, col1) of the cells of low (K, D, h, w) whose bilinear ``factor`` x
    upsampling covers canvas rows [row0, row1), columns [col0, col1) (a cell more each side)."""
    return [
        max(row0 // factor - 1, 0),
        min(-(-row1 // factor) + 1, low.shape[2]),
        max(col0 // factor - 1, 0),
        min(-(-col1 // factor) + 1, low.shape[3]),
    ]


def _interleaved(planes: torch.Tensor) -> torch.Tensor:
    """(K, 3, rows, cols) -> (K, rows, cols, 3) contiguous, e.g. uint8 (faster than copying
    the permuted view, whose innermost run is 3 long)."""
    return torch.stack([planes[:, 0], planes[:, 1], planes[:, 2]], dim=3)


def _source_around(
    source_canvas: torch.Tensor, k: int, y0: int, y1: int, x0: int, x1: int
) -> torch.Tensor:
    """(K, H, W, 3) uint8: source_canvas (H, W, 3) uint8 in each of K images outside rows
    [y0, y1), columns [x0, x1), left unset inside (the caller writes it): no copy of pixels
    that are overwritten."""
    height, width = source_canvas.shape[0], source_canvas.shape[1]
    out = torch.empty([k, height, width, 3], dtype=source_canvas.dtype, device=source_canvas.device)
    source = source_canvas.unsqueeze(0)
    out[:, :y0] = source[:, :y0]
    out[:, y1:] = source[:, y1:]
    out[:, y0:y1, :x0] = source[:, y0:y1, :x0]
    out[:, y0:y1, x1:] = source[:, y0:y1, x1:]
    return out


def _upsample_crop(
    low: torch.Tensor, factor: int, row0: int, col0: int, rows: int, cols: int
) -> torch.Tensor:
    """rows x cols from row0, col0 of the bilinear ``factor`` x upsampling of (K, D, h, w)."""
    if factor == 1:
        up = low
    else:
        # F.interpolate(scale_factor=factor, mode="bilinear", align_corners=False), called as
        # the kernel it dispatches to: see _upsample_bilinear
        size = [low.shape[2] * factor, low.shape[3] * factor]
        up = _upsample_bilinear(low.contiguous(), size, float(factor))
    return up[:, :, row0 : row0 + rows, col0 : col0 + cols]


def _upsample_bilinear(low: torch.Tensor, size: list[int], factor: float) -> torch.Tensor:
    """Bilinear upsampling (align_corners=False) of (K, D, h, w) to size [rows, cols], with
    source coordinates (x + 0.5) / factor - 0.5 (``factor`` <= 0: rows / h and cols / w).

    The aten kernel itself, not ``F.interpolate``: scripted, ``F.interpolate`` carries every mode
    of the exporting torch (2.13's lanczos among them), and an older TorchScript runtime (the
    libtorch 2.5 of Triton 24.10's PyTorch backend) refuses to load a model naming an operator
    it lacks. Same kernel, same arguments, so the same numbers as ``F.interpolate``."""
    if not torch.jit.is_scripting():  # eager or traced (ONNX export): the same call, spelt so
        # that the exporter knows it (scripting compiles only the branch below)
        if factor > 0.0:
            return F.interpolate(low, scale_factor=factor, mode="bilinear", align_corners=False)
        return F.interpolate(low, size=size, mode="bilinear", align_corners=False)
    scale: float | None = factor if factor > 0.0 else None
    return torch.ops.aten.upsample_bilinear2d(low, size, False, scale, scale)


def _upsample_nearest(low: torch.Tensor, factor: int) -> torch.Tensor:
    """Nearest upsampling of (K, D, h, w) by an integer ``factor``: (K, D, h f, w f), each cell
    repeated (equal to ``F.interpolate(scale_factor=factor, mode="nearest")``, see
    _upsample_bilinear for why not that)."""
    return low.repeat_interleave(factor, dim=2).repeat_interleave(factor, dim=3)


def _pixel_grid(height: int, width: int, device: torch.device) -> torch.Tensor:
    """(1, 2, H, W) float32 pixel coordinates x, y (pixel centres at integers)."""
    ys = torch.arange(height, dtype=torch.float32, device=device)
    xs = torch.arange(width, dtype=torch.float32, device=device)
    grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([grid_x, grid_y]).unsqueeze(0)


def _normaliser(height: int, width: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """(scale, offset), each (2,): ``positions * scale + offset`` maps pixel positions x, y
    (centres at integers) to grid_sample's [-1, 1] units (align_corners=False)."""
    scale = torch.tensor([2.0 / width, 2.0 / height], device=device)
    offset = torch.tensor([1.0 / width - 1.0, 1.0 / height - 1.0], device=device)
    return scale, offset


def _normalised(positions: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Pixel positions (..., 2) x, y (centres at integers) in grid_sample's units."""
    scale, offset = _normaliser(height, width, positions.device)
    return torch.addcmul(offset, positions, scale)


def _bounding_box(mask: torch.Tensor, margin: int) -> list[int]:
    """[row0, row1, col0, col1) of the nonzero cells of a 2D mask grown by ``margin`` cells and
    clipped to it; row0 >= row1 when the mask is empty."""
    rows = torch.nonzero(mask.amax(dim=1) > 0).flatten()
    cols = torch.nonzero(mask.amax(dim=0) > 0).flatten()
    if rows.numel() == 0:
        return [0, 0, 0, 0]
    return [
        max(int(rows[0]) - margin, 0),
        min(int(rows[-1]) + 1 + margin, mask.shape[0]),
        max(int(cols[0]) - margin, 0),
        min(int(cols[-1]) + 1 + margin, mask.shape[1]),
    ]


def _blur_within(x: torch.Tensor, window: torch.Tensor, radius: int) -> torch.Tensor:
    """``_box_blur`` of the box ``window`` (1, 1, h, w) float32 (1 inside, 0 outside) cut out
    of x (K, D, h, w), zero outside it: the mean over the window's cells only. x must be zero
    outside the window."""
    count = _window_sum(_window_sum(window, radius, 2, True), radius, 3, True)
    total = _window_sum(_window_sum(x, radius, 2, True), radius, 3, True)
    return total / count.clamp_min(1.0)


def _box_mask(mask: torch.Tensor, margin: int) -> torch.Tensor:
    """(..., h, w) bool: the cells of ``_bounding_box(mask, margin)`` (the box of the nonzero
    cells of the last two axes, grown by ``margin`` and clipped), from static-shape operations.
    mask: (..., h, w) >= 0."""
    rows = _span(mask.amax(dim=-1) > 0, margin)  # (..., h)
    cols = _span(mask.amax(dim=-2) > 0, margin)  # (..., w)
    return rows.unsqueeze(-1) & cols.unsqueeze(-2)


def _span(present: torch.Tensor, margin: int) -> torch.Tensor:
    """(..., n) bool: from ``margin`` before the first True of ``present`` (..., n) bool to
    ``margin`` after its last one; all False when there is none."""
    counts = present.to(torch.int32)
    before = counts.cumsum(dim=-1)  # Trues at or before each index
    after = counts.flip(-1).cumsum(dim=-1).flip(-1)  # Trues at or after it
    n = present.shape[-1]
    index = torch.arange(n, device=present.device)
    ahead = (index + margin).clamp_max(n - 1)
    behind = (index - margin).clamp_min(0)
    return (before.index_select(-1, ahead) > 0) & (after.index_select(-1, behind) > 0)


def _masked_median(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(D,) lower median (``torch.median``'s: the ((n - 1) // 2)-th smallest) of the rows of
    values (N, D) float32 where mask (N,) bool; +inf when none is."""
    filled = torch.where(mask.unsqueeze(1), values, torch.full_like(values, float("inf")))
    ordered = filled.sort(dim=0).values
    index = (mask.sum() - 1).clamp_min(0) // 2
    return ordered.index_select(0, index.reshape(1))[0]


def _masked_quantile(values: torch.Tensor, mask: torch.Tensor, q: float) -> torch.Tensor:
    """() ``torch.quantile(values[mask], q)`` (linear interpolation) of values (N,) float32,
    with static shapes; +inf when mask (N,) bool is all False."""
    filled = torch.where(mask, values, torch.full_like(values, float("inf")))
    ordered = filled.sort().values
    rank = q * (mask.sum() - 1).clamp_min(0).to(torch.float32)
    below = rank.to(torch.int64)
    above = rank.ceil().to(torch.int64)
    low = ordered.index_select(0, below.reshape(1))[0]
    high = ordered.index_select(0, above.reshape(1))[0]
    return torch.lerp(low, high, rank - below.to(torch.float32))


def _push_pull(values: torch.Tensor, weight: torch.Tensor, levels: int) -> torch.Tensor:
    """Fill a sparse field by push-pull. values: (K, D, h, w) premultiplied by weight (K, 1, h, w)
    in [0, 1]. Returns (K, D, h, w): the data where weight is 1, smooth in between."""
    pyramid: list[tuple[torch.Tensor, torch.Tensor]] = []
    for _ in range(levels):
        pyramid.append((values, weight))
        values = F.avg_pool2d(values, 2, ceil_mode=True)
        weight = F.avg_pool2d(weight, 2, ceil_mode=True)
    filled = values / weight.clamp_min(1e-6)
    for level in range(levels - 1, -1, -1):
        values, weight = pyramid[level]
        coarse = _upsample_bilinear(filled, [values.shape[2], values.shape[3]], 0.0)
        confidence = weight.clamp(0.0, 1.0)
        local = values / weight.clamp_min(1e-6)
        filled = confidence * local + (1.0 - confidence) * coarse
    return filled


def _window_span(present: torch.Tensor, margin: int, factor: int, limit: int) -> list[torch.Tensor]:
    """[start, stop) (0-d int64 tensors) of :func:`reenact.geometric.mouth_detail_window` along
    one axis with static shapes: the first and last nonzero of ``present`` (n,) float32 grown
    by ``margin``, times ``factor``, clipped to [0, limit]; [0, 0] when none is nonzero."""
    nonzero = present > 0.0
    index = torch.arange(present.shape[0], device=present.device)
    first = torch.where(nonzero, index, torch.full_like(index, present.shape[0])).amin()
    last = torch.where(nonzero, index, torch.full_like(index, -1)).amax()
    start = ((first - margin) * factor).clamp_min(0)
    stop = ((last + 1 + margin) * factor).clamp_max(limit)
    found = nonzero.any()
    zero = torch.zeros_like(start)
    return [torch.where(found, start, zero), torch.where(found, stop, zero)]

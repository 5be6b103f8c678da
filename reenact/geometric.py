"""Renders what the geometric reenactor needs: correspondences, weights and mouth interior.

The source mesh and K target meshes (one 3DMM, same topology) are decoded and rasterized in ONE
``pnccrender.render`` batch call (B = K + 1: the source last, so that the mouth detail can take
its place after the K targets without a copy of theirs). Every mesh carries per-vertex
attributes; the rasterizer interpolates them barycentrically, so each pixel of a target render
tells where the same surface point lies in the source photo. :mod:`reenact.reenactor` turns that
into pictures.

Resolution: a canvas of H x W pixels is rendered at h x w = ceil(H / d) x ceil(W / d) pixels,
d = ``RendererConfig.downscale`` (default 2: 512 x 384 -> 256 x 192). Render pixel (i, j) samples
the canvas point (d j + (d - 1) / 2, d i + (d - 1) / 2) in canvas pixels (centres at integers),
the grid of a bilinear d-times downsampling (``F.interpolate(..., align_corners=False)`` maps it
back exactly). The correspondence is piecewise linear, so the reenactor upsamples it bilinearly.
Coordinates stored in the channels are always canvas pixels, whatever d.

Channel layout of a render (h, w, C) float32 (declared in :mod:`reenact.reenactors.contract`),
C = ``N_CHANNELS`` = 10 for the geometric mode; 0 wherever nothing is drawn. The learned modes'
contract adds the normalised coordinate code of :mod:`reenact.pncc` (PNCC) as channels 10..12,
static per vertex (``ReenactorRenderer(contract=LEARNED)``):

=====  ==============  ===================================================================
index  name            meaning
=====  ==============  ===================================================================
0, 1   SRC_X, SRC_Y    source-canvas pixel coordinates of the surface point (x right, y down,
                       pixel centres at integers, cv2's convention): the correspondence
2      SRC_Z           the point's depth in the source pose (pixels, larger = nearer), for
                       the occlusion test against the source render's own SRC_Z
3      COVERAGE        1 on every drawn triangle (face, head, eyes, mouth interior)
4      WARP_WEIGHT     trust in the correspondence for copying colour, in [0, 1]: 1 on the
                       front face and the eyes, fading to 0 towards grazing angles (in the
                       source or the target pose) and the face border; 0 on the head, neck
                       and back of the head and on the mouth interior
5..7   TEETH_SHADE,    the light on the mouth interior in [0, 1], one channel per material
       GUMS_SHADE,     (teeth; gums and tongue; the mouth socket), 0 on the others and off
       CAVITY_SHADE    the mouth: the reenactor multiplies them by the material colours
                       (the teeth's taken from the photo when it shows them) and adds them up
8      MOUTH_ALPHA     1 on the mouth interior (teeth, gums, tongue, cavity), 0 elsewhere;
                       interpolation gives a soft ramp into the lips
9      EXPRESSION_     the expression's shading change on the face: target shade / source
       SHADE           shade - 1 (0: unchanged), both meshes lit by the same light in the
                       source's pose, so only the expression counts (folds it adds are
                       darker, folds of the source it removes lighter); 0 in the source
                       render, off the front face, on the eyes and on the mouth interior
=====  ==============  ===================================================================

Expression shading (EXPRESSION_SHADE): each vertex's normal is the area-weighted normal of the
decoded mesh (:func:`reenact.head_render.vertex_normals_torch`), turned into the source's pose;
the target normal is the source's moved ``fold_gain`` times its own change (the ICT blendshapes
have furrows about three edges wide, so their normals turn by a few degrees where a real fold
turns by tens: the gain stands in for the folds' depth, derived from the blendshapes and nothing
else). Shade = ambient + (1 - ambient) max(0, normal . light); the ratio is clamped to
[``shade_ratio_min``, ``shade_ratio_max``], smoothed over the mesh (``shade_smooth_passes``
neighbour averages) and faded to 1 by the front-face weight. docs/emotions.md has the figures.

Teeth: ICT's teeth are 32 separate meshes. Each tooth vertex knows where it lies across its
tooth (0 at the tooth's middle, 1 at its sides, along the dental arch): the teeth shade falls
by ``teeth_gap_dark`` towards the sides, so the gaps between teeth show dark, and by
``teeth_back_dark`` on the lingual side, which only shows through gaps.

Mouth detail: at half resolution a tooth of a face a few hundred pixels wide is 3-5 render
pixels across, and the gaps between teeth blur into a grey band. So the mouth shades
(MOUTH_DETAIL: TEETH_SHADE .. CAVITY_SHADE) are also rendered at canvas resolution in a window:
the box of the render pixels where some target shows its mouth interior, grown by
MOUTH_DETAIL_MARGIN render pixels (:func:`mouth_detail_window`), drawing the mouth interior alone
(its parts hide each other; ``mouth_detail_reach_cm`` adds the skin round it, at a cost), in a
second pnccrender call of the K targets over that window only. The result (K, rows, cols, 3) is
packed after the K target renders as zero-padded render slices (:func:`pack_mouth_detail`):
``render`` returns (K + n, h, w, C), n = 0 when no target shows its mouth interior. The
reenactor computes the same window from the targets' MOUTH_ALPHA, so the served inputs keep
their shapes (K + n for K), and takes the detail only where the reduced render shows the
interior (its upsampled MOUTH_ALPHA is nonzero: elsewhere the skin, not drawn, hides it). The
outline of the interior stays the reduced render's MOUTH_ALPHA, softened; the correspondence
channels stay at half resolution too: piecewise linear, they upsample near exactly.

In the source render SRC_X, SRC_Y are the pixel's own (canvas) coordinates
and SRC_Z is its z-buffer depth. For K = 15 at 512 x 384 the renders are 16 x 256 x 192 x 10
float32, 31 MB (they were 151 MB at full resolution with PNCC), plus one or two slices of
mouth detail.
"""

from __future__ import annotations

import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import cv2
import numpy as np
import torch

import pnccrender
from reenact.head_render import PIXEL_CENTRE, corner_incidence, vertex_normals_torch
from reenact.morphable import (
    EXPR_SLICE,
    FLIP_Y,
    ID_SLICE,
    MATERIAL_NAMES,
    N_PARAMS,
    ROT_SLICE,
    SCALE_SLICE,
    TRANS_SLICE,
    MorphableModel,
    rotation_matrix,
)
from reenact.pncc import FACE_VERTEX_COUNT, ncc
from reenact.reenactors.contract import (
    CAVITY_SHADE,
    COVERAGE,
    EXPRESSION_SHADE,
    GEOMETRIC,
    MOUTH_ALPHA,
    MOUTH_DETAIL,
    MOUTH_DETAIL_MARGIN,
    N_GEOMETRIC_CHANNELS,
    PNCC_FIRST,
    SRC_X,
    SRC_Y,
    SRC_Z,
    TEETH_SHADE,
    WARP_WEIGHT,
    RenderContract,
    mouth_detail_window,
)

N_CHANNELS = N_GEOMETRIC_CHANNELS
SRC_XY = slice(SRC_X, SRC_Y + 1)
MOUTH_SHADES = slice(TEETH_SHADE, CAVITY_SHADE + 1)  # in the order of MOUTH_MATERIAL_ORDER
MOUTH_MATERIAL_ORDER = ("teeth", "gums", "cavity")

# Vertex ranges of the ICT model (docs/assets.md), half-open.
HEAD_NECK = range(9409, 11248)
MOUTH_SOCKET = range(11248, 13294)
EYE_SOCKETS = range(13294, 14062)

FACE_MATERIALS = ("M_Face", "M_BackHead")  # M_BackHead holds head, neck and both sockets
MOUTH_MATERIALS = ("M_GumsTongue", "M_Teeth")
EYE_MATERIALS = ("M_ScleraLeft", "M_IrisLeft", "M_ScleraRight", "M_IrisRight")
IRIS_MATERIALS = ("M_IrisLeft", "M_IrisRight")

# Multi-PIE 68 landmark indices outlining the front face: jaw 0..16, brows 17..26.
JAW = tuple(range(17))
BROWS = tuple(range(17, 27))


def _smoothstep(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    t = np.clip((x - lo) / (hi - lo), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _write_rolled(target: np.ndarray, rows: np.ndarray) -> None:
    """target[:] = np.roll(rows, -1, axis=0), without the rolled copy: the first row of rows
    (B, ...) goes last (the source, which the renderer's arguments have first)."""
    target[:-1] = rows[1:]
    target[-1] = rows[0]


def pack_mouth_detail(detail: np.ndarray, h: int, w: int) -> np.ndarray:
    """The mouth detail (K, rows, cols, MOUTH_DETAIL_CHANNELS) float32 laid out as render
    slices (n, h, w, N_CHANNELS) float32, n as few as hold it, zero-padded at the end: the
    reenactor reads it back from the slices after the K target renders."""
    per_slice = h * w * N_CHANNELS
    n = -(-detail.size // per_slice)
    packed = np.zeros(n * per_slice, np.float32)
    packed[: detail.size] = detail.reshape(-1)
    return packed.reshape(n, h, w, N_CHANNELS)


def ring_mean_matrix(edges: np.ndarray, n_vertices: int) -> torch.Tensor:
    """(n, n) float32 sparse CSR matrix M whose product M @ values (n, D) is the mean of each
    vertex's value and its neighbours' over the undirected ``edges`` (E, 2) int (each once,
    no self-loops): one sparse product instead of a gather and a scatter per pass."""
    rows = np.concatenate([edges[:, 0], edges[:, 1], np.arange(n_vertices)])
    cols = np.concatenate([edges[:, 1], edges[:, 0], np.arange(n_vertices)])
    order = np.lexsort((cols, rows))
    rows, cols = rows[order], cols[order]
    count = np.bincount(rows, minlength=n_vertices)  # the vertex and its neighbours
    crow = np.concatenate([[0], np.cumsum(count)])
    values = (1.0 / count[rows]).astype(np.float32)
    with warnings.catch_warnings():  # torch calls its sparse CSR support a beta
        warnings.filterwarnings("ignore", "Sparse CSR tensor support is in beta")
        return torch.sparse_csr_tensor(
            torch.from_numpy(crow.astype(np.int64)),
            torch.from_numpy(cols.astype(np.int64)),
            torch.from_numpy(values),
            (n_vertices, n_vertices),
            check_invariants=True,
        )


def tooth_labels(triangles: np.ndarray, n_vertices: int) -> np.ndarray:
    """(n_vertices,) int64 connected-component label of each vertex over ``triangles`` (T, 3)
    (the smallest vertex id of its component; a vertex on no triangle is its own)."""
    label = np.arange(n_vertices)
    a = triangles[:, [0, 1, 2]].ravel()
    b = triangles[:, [1, 2, 0]].ravel()
    while True:
        low = np.minimum(label[a], label[b])
        before = label.copy()
        np.minimum.at(label, a, low)
        np.minimum.at(label, b, low)
        if np.array_equal(before, label):
            return label


@dataclass(frozen=True)
class RendererConfig:
    """Tunables of :class:`ReenactorRenderer` (the one source of their defaults).

    Distances in centimetres of the model. The mouth interior's shade is the light at the camera
    (ambient share + the rest times the normal's z) falling off exponentially with the depth
    behind the front teeth; the teeth, lit from the front, keep more of it.
    """

    grazing_low: float = 0.2  # |normal.z| in a view at which the warp weight reaches 0 …
    grazing_high: float = 0.5  # … and where it is back to full
    face_inside_cm: float = 1.2  # inside the front-face outline: full warp weight from here on
    face_outside_cm: float = 0.3  # outside the outline: no warp weight from here on
    forehead_cm: float = 2.5  # how far above the brows the front-face outline reaches
    backface_cull_z: float = -0.4  # neutral-mesh triangles facing further back are not drawn
    neck_still_cm: float = 7.0  # neck this far below the chin stays where the source has it …
    neck_follow_cm: float = 1.5  # … and from this far below the chin up it moves with the head
    iris_depth_bias_cm: float = 0.1  # draws the iris in front of the closed sclera shell
    ambient: float = 0.55  # mouth shading: ambient share of the light at the camera …
    teeth_ambient: float = 0.6  # … and on the teeth
    cavity_falloff_cm: float = 4.0  # mouth shading: light falls by 1/e per this depth behind …
    teeth_falloff_cm: float = 8.0  # … and on the teeth
    teeth_gap_start: float = 0.55  # across a tooth (0 middle, 1 side): darkening starts …
    teeth_gap_dark: float = 0.75  # … and the shade falls by this share at its side
    teeth_back_dark: float = 0.5  # shade lost on the back (lingual) side of the teeth
    light: tuple[float, float, float] = (0.0, 0.4, 1.0)  # expression shading: light direction
    # in the source's view (x right, y up, z to the camera), from above the camera
    shade_ambient: float = 0.3  # expression shading: ambient share of the light
    shade_smooth_passes: int = 1  # 1-ring means of the shade change against mesh noise …
    fold_passes: int = 4  # … and these more split it into broad change and folds, …
    broad_gain: float = 0.5  # … the broad change weighted by this …
    fold_gain: float = 2.5  # … and the folds by this (the blendshapes' folds are too shallow)
    shade_ratio_min: float = 0.8  # target / source shade clamped to this …
    shade_ratio_max: float = 1.15  # … and this, …
    lighten_beyond_neutral: float = 0.08  # … and at most this lighter than the source's face
    # with a neutral expression: the source's own folds lighten, no pale blotches elsewhere
    # (from shade_ratio_max - 1 on: no limit)
    downscale: int = 2  # render at 1 / downscale of the canvas size (module docstring)
    mouth_detail: bool = True  # also render the mouth window at canvas resolution, drawing …
    mouth_detail_reach_cm: float = 0.0  # … the mouth interior and the skin this close to its
    # centre on the mean face (0: the interior alone, its parts hiding each other)
    num_threads: int | None = None  # pnccrender threads (None: one per hardware thread)


def mouth_shades(
    material: np.ndarray, facing: np.ndarray, depth_behind: np.ndarray, config: RendererConfig
) -> np.ndarray:
    """The light on mouth-interior vertices, per material (:class:`RendererConfig`'s model).

    material: (M, 3) float32 one-hot, columns in MOUTH_MATERIAL_ORDER; facing: (B, M) normal z
    in each view; depth_behind: (B, M) cm behind the front teeth. Returns (B, M, 3) float32:
    each vertex's shade in its material's column, 0 in the others.
    """
    teeth = material[:, 0] > 0.0
    ambient = np.where(teeth, config.teeth_ambient, config.ambient).astype(np.float32)
    falloff = np.where(teeth, config.teeth_falloff_cm, config.cavity_falloff_cm).astype(np.float32)
    lit = np.clip(facing, 0.0, 1.0)
    shade = (ambient + (1.0 - ambient) * lit) * np.exp(-depth_behind / falloff)
    return (shade[:, :, None] * material).astype(np.float32, copy=False)


class ReenactorRenderer:
    """Decodes source + K target parameter sets and renders them with reenactor attributes.

    Built once per model; :meth:`render` is the per-request hot path (one call at a time: it
    keeps its attribute buffer between calls, and computes the expression shading on a second
    thread of its own).
    """

    def __init__(
        self,
        model: MorphableModel,
        config: RendererConfig | None = None,
        contract: RenderContract = GEOMETRIC,
    ) -> None:
        self.config = config or RendererConfig()
        self.contract = contract
        drawn = self._drawn_triangles(model)
        used = np.unique(model.triangles[drawn])
        mouth_range = np.isin(used, self._vertices_of(model, MOUTH_MATERIALS)) | (
            (used >= MOUTH_SOCKET.start) & (used < MOUTH_SOCKET.stop)
        )
        used = np.concatenate([used[~mouth_range], used[mouth_range]])  # mouth last: a slice
        self._mouth_start = int(np.count_nonzero(~mouth_range))
        self.vertex_ids = used.astype(np.int64)  # (N,) model vertex ids that are decoded
        remap = np.full(model.n_vertices, -1, np.int64)
        remap[used] = np.arange(used.size)
        self.triangles = np.ascontiguousarray(remap[model.triangles[drawn]], np.int32)
        self._neutral = torch.from_numpy(model.neutral[used].reshape(1, -1).astype(np.float32))
        self._identity_basis = torch.from_numpy(
            model.identity_basis[:, used].reshape(model.n_identity, -1).astype(np.float32)
        )
        self._expression_basis = torch.from_numpy(
            model.expression_basis[:, used].reshape(model.n_expression, -1).astype(np.float32)
        )
        self._classify(model, used)
        self._static_weight = self._front_face_weight(model, used)
        self._corners = [torch.from_numpy(c.astype(np.int64)) for c in self.triangles.T]
        self._incidence = corner_incidence(self._corners, used.size)
        assert not self.is_eye[self._mouth_start :].any()
        self._eye_index = np.flatnonzero(self.is_eye)  # all before the mouth slice
        self._identity_cache: tuple[bytes, torch.Tensor] | None = None
        self._worker: ThreadPoolExecutor | None = None
        self._worker_pid = 0
        self._attribute_buffer = np.empty((0, used.size, contract.n_channels), np.float32)
        self._pncc = ncc(model)[used] if contract.pncc else None  # (N, 3), static
        chin_y = float(model.neutral[model.landmarks_68[8], 1])
        self._follow = _smoothstep(
            model.neutral[used, 1],
            chin_y - self.config.neck_still_cm,
            chin_y - self.config.neck_follow_cm,
        )[None, :, None].astype(np.float32)  # (1, N, 1): 1 on the head, 0 down the neck
        self._follow = torch.from_numpy(self._follow)
        d = self.config.downscale
        self._raster_scale = torch.tensor([1.0 / d, 1.0 / d, 1.0])
        self._raster_offset = torch.tensor([PIXEL_CENTRE / d, PIXEL_CENTRE / d, 0.0])
        self._cavity_front_z = float(model.neutral[self._vertices_of(model, ("M_Teeth",)), 2].max())
        self._teeth_shade = self._teeth_pattern(model, used)[None, self._mouth_start :]  # (1, M)
        self._init_expression_shading(model, used)
        self._init_mouth_detail(model, used)

    def _init_mouth_detail(self, model: MorphableModel, used: np.ndarray) -> None:
        """The mesh drawn for the mouth detail: the mouth interior and the triangles of the skin
        within ``mouth_detail_reach_cm`` of its centre on the mean face; its vertices (indices
        into the decoded ones) and its triangles over them."""
        points = model.neutral[used]
        centre = points[self._mouth_start :].mean(axis=0)
        near = np.linalg.norm(points - centre, axis=1) < self.config.mouth_detail_reach_cm
        near[self._mouth_start :] = True
        triangles = self.triangles[near[self.triangles].all(axis=1)]
        kept = np.unique(triangles)
        local = np.full(used.size, -1, np.int64)
        local[kept] = np.arange(kept.size)
        # a slice when the kept vertices are one run (the mouth interior alone): no gather
        run = kept.size > 0 and kept[-1] - kept[0] + 1 == kept.size
        self._detail_vertices = slice(int(kept[0]), int(kept[-1]) + 1) if run else kept
        self._detail_triangles = np.ascontiguousarray(local[triangles], np.int32)

    def _init_expression_shading(self, model: MorphableModel, used: np.ndarray) -> None:
        """The mesh pieces of the expression shading, all on the S vertices of the front-face
        triangles (those with a vertex of nonzero front-face weight, eyes excluded): their
        indices, weights, each blendshape's normal change and the 1-ring neighbour average."""
        m = self._mouth_start
        weight = self._static_weight[:m].copy()
        weight[self.is_eye[:m]] = 0.0
        face_tris = self.triangles[(self.triangles < m).all(axis=1)]
        face_tris = face_tris[(weight[face_tris] > 0.0).any(axis=1)]
        shaded = np.unique(face_tris)  # (S,) indices into the first m vertices
        local = np.full(m, -1, np.int64)
        local[shaded] = np.arange(shaded.size)
        tris = local[face_tris]  # (T', 3) into the S vertices
        self._shaded = torch.from_numpy(shaded.astype(np.int64))
        self._shade_weight = torch.from_numpy(weight[shaded, None])  # (S, 1)
        corners = [torch.from_numpy(c) for c in tris.T]
        neutral = torch.from_numpy(model.neutral[used[shaded]].astype(np.float32))
        basis = torch.from_numpy(model.expression_basis[:, used[shaded]].astype(np.float32))
        rest = vertex_normals_torch(neutral, corners)
        self._normal_basis = torch.stack(
            [vertex_normals_torch(neutral + shape, corners) - rest for shape in basis]
        ).reshape(model.n_expression, -1)  # (55, 3 S): each blendshape's normal change
        edges = np.unique(np.sort(tris[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2), axis=1), axis=0)
        self._ring_mean = ring_mean_matrix(edges, shaded.size)

    def _teeth_pattern(self, model: MorphableModel, used: np.ndarray) -> np.ndarray:
        """(N,) float32 factor on the teeth shade: 1 in the middle of each tooth's front, falling
        by ``teeth_gap_dark`` towards its sides (measured along the dental arch) and by
        ``teeth_back_dark`` on its back (lingual) side; 1 off the teeth."""
        cfg = self.config
        factor = np.ones(used.size, np.float32)
        teeth = np.flatnonzero(self.is_teeth)
        if teeth.size == 0:
            return factor
        tris = model.triangles_of("M_Teeth")
        label = tooth_labels(tris, model.n_vertices)
        points = model.neutral.astype(np.float64)
        normals = vertex_normals_torch(
            torch.from_numpy(model.neutral.astype(np.float32)),
            [torch.from_numpy(c.astype(np.int64)) for c in tris.T],
        ).numpy()
        ids = used[teeth]
        arch_z = float(points[np.unique(tris), 2].min())  # the arch's centre lies behind it
        across = np.zeros(ids.size)
        back = np.zeros(ids.size)
        for tooth in np.unique(label[ids]):
            members = label[ids] == tooth
            centre = points[label == tooth].mean(axis=0)
            radial = np.array([centre[0], 0.0, centre[2] - arch_z])
            radial /= max(np.linalg.norm(radial), 1e-9)
            lateral = np.array([radial[2], 0.0, -radial[0]])  # horizontal, along the arch
            offset = np.abs((points[label == tooth] - centre) @ lateral).max()
            across[members] = np.abs((points[ids[members]] - centre) @ lateral) / max(offset, 1e-9)
            back[members] = -(normals[ids[members]] @ radial)
        gap = _smoothstep(across, cfg.teeth_gap_start, 1.0)
        lingual = _smoothstep(back, 0.0, 0.5)
        factor[teeth] = (1.0 - cfg.teeth_gap_dark * gap) * (1.0 - cfg.teeth_back_dark * lingual)
        return factor

    def _drawn_triangles(self, model: MorphableModel) -> np.ndarray:
        """(T,) bool: the triangles rendered. Face, head and neck, mouth socket, teeth, gums and
        tongue, sclera and iris; not the eye sockets (hidden behind the eyeballs) nor the thin
        eye layers; and not the triangles that face backwards on the neutral mesh (normal z below
        ``backface_cull_z``), which no head pose we render shows, except on the face (the neck
        under the chin shows when the jaw opens) and in the mouth socket (its far wall is seen
        from inside)."""
        materials = FACE_MATERIALS + MOUTH_MATERIALS + EYE_MATERIALS
        drawn = np.isin(model.triangle_material, [MATERIAL_NAMES.index(m) for m in materials])
        tris = model.triangles
        drawn &= ~((tris >= EYE_SOCKETS.start) & (tris < EYE_SOCKETS.stop)).any(axis=1)
        v = model.neutral.astype(np.float64)
        normal = np.cross(v[tris[:, 1]] - v[tris[:, 0]], v[tris[:, 2]] - v[tris[:, 0]])
        normal_z = normal[:, 2] / np.maximum(np.linalg.norm(normal, axis=1), 1e-12)
        socket = ((tris >= MOUTH_SOCKET.start) & (tris < MOUTH_SOCKET.stop)).any(axis=1)
        face = model.triangle_material == MATERIAL_NAMES.index("M_Face")
        return drawn & ((normal_z >= self.config.backface_cull_z) | socket | face)

    @staticmethod
    def _vertices_of(model: MorphableModel, materials: tuple[str, ...]) -> np.ndarray:
        return np.unique(model.triangles_of(*materials))

    def _classify(self, model: MorphableModel, used: np.ndarray) -> None:
        """Boolean (N,) masks of the decoded vertices by role."""
        self.is_eye = np.isin(used, self._vertices_of(model, EYE_MATERIALS))
        self.is_iris = np.isin(used, self._vertices_of(model, IRIS_MATERIALS))
        socket = (used >= MOUTH_SOCKET.start) & (used < MOUTH_SOCKET.stop)
        self.is_teeth = np.isin(used, self._vertices_of(model, ("M_Teeth",)))
        self.is_gums = np.isin(used, self._vertices_of(model, ("M_GumsTongue",)))
        self.is_mouth = socket | self.is_teeth | self.is_gums
        self.is_face = used < FACE_VERTEX_COUNT
        # one-hot material of each mouth vertex, columns in MOUTH_MATERIAL_ORDER (teeth and gums
        # win over the socket where ICT's ranges overlap)
        material = np.zeros((used.size, 3), np.float32)
        material[socket, 2] = 1.0
        material[self.is_gums] = (0.0, 1.0, 0.0)
        material[self.is_teeth] = (1.0, 0.0, 0.0)
        self.mouth_material = material  # (N, 3) float32, zero off the mouth

    def _front_face_weight(self, model: MorphableModel, used: np.ndarray) -> np.ndarray:
        """(N,) float32 static warp weight: 1 well inside the front-face outline (jaw line and
        brows raised to the forehead, on the neutral mesh seen from the front), fading to 0 just
        outside it; eyes 1; head, neck and mouth interior 0."""
        cfg = self.config
        marks = model.neutral[model.landmarks_68, :2].astype(np.float64)
        brows = marks[list(BROWS[::-1])] + [0.0, cfg.forehead_cm]
        outline = np.concatenate([marks[list(JAW)], brows]).astype(np.float32)
        points = model.neutral[used, :2]
        inside = np.array(
            [cv2.pointPolygonTest(outline, (float(x), float(y)), True) for x, y in points],
            np.float32,
        )
        weight = _smoothstep(inside, -cfg.face_outside_cm, cfg.face_inside_cm)
        weight[~self.is_face] = 0.0
        weight[self.is_eye] = 1.0
        weight[self.is_mouth] = 0.0
        return weight.astype(np.float32)

    def _shading_worker(self) -> ThreadPoolExecutor:
        """The thread that computes the expression shading during :meth:`render` (started
        on first use, and again in a forked child, which has none of its parent's threads)."""
        if self._worker is None or self._worker_pid != os.getpid():
            self._worker = ThreadPoolExecutor(1, thread_name_prefix="expression-shading")
            self._worker_pid = os.getpid()
        return self._worker

    @property
    def n_vertices(self) -> int:
        return int(self.vertex_ids.size)

    def shape(self, params: np.ndarray) -> np.ndarray:
        """Model-space vertices (B, N, 3) float32 cm of the decoded vertices. params: (B, 162)."""
        return self._shape(params).numpy()

    def _shape(self, params: np.ndarray) -> torch.Tensor:
        """:meth:`shape` as a tensor. torch, not numpy: OpenBLAS's worker threads keep spinning
        after a numpy matmul and would slow down the rasterizer's threads that follow."""
        identity = params[:, ID_SLICE]
        if np.all(identity == identity[:1]):  # one person: its neutral face once (and cached)
            key = identity[0].tobytes()
            if self._identity_cache is None or self._identity_cache[0] != key:
                offset = torch.from_numpy(identity[:1].copy()) @ self._identity_basis
                self._identity_cache = (key, offset.add_(self._neutral))
            base = self._identity_cache[1]
        else:
            base = torch.addmm(
                self._neutral, torch.from_numpy(identity.copy()), self._identity_basis
            )
        expression = torch.from_numpy(np.ascontiguousarray(params[:, EXPR_SLICE]))
        decoded = (expression @ self._expression_basis).add_(base)  # addmm's numbers, faster
        return decoded.reshape(params.shape[0], -1, 3)

    def render(
        self,
        source_params: np.ndarray,
        target_params: np.ndarray,
        height: int = 512,
        width: int = 384,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Render the source and K targets in one batch for a canvas of height x width pixels.

        source_params: (162,) float32 in canvas pixels; target_params: (K, 162) float32.
        Returns (source_render (h, w, C) float32, target_render (K, h, w, C) float32) at the
        reduced resolution h x w (``downscale``), channels as in the module docstring.
        """
        source = np.asarray(source_params, np.float32).reshape(1, N_PARAMS)
        targets = np.asarray(target_params, np.float32)
        if targets.ndim != 2 or targets.shape[1] != N_PARAMS:
            raise ValueError(f"target_params must be (K, {N_PARAMS}), got {targets.shape}")
        params = np.concatenate([source, targets])
        shape = self._shape(params)  # (B, N, 3)
        rot = params[:, ROT_SLICE]
        rotation = rotation_matrix(rot[:, 0], rot[:, 1], rot[:, 2])  # (B, 3, 3)
        scale = params[:, SCALE_SLICE]  # (B, 1)
        linear = scale[:, :, None] * FLIP_Y[:, None] * rotation  # (B, 3, 3): s F R
        # (B, N, 3) canvas pixels, in torch: numpy is slow at broadcasting over a last axis of 3.
        # bmm, then the translation added: the numbers of baddbmm, in less than half its time
        image = torch.bmm(shape, torch.from_numpy(np.ascontiguousarray(linear.transpose(0, 2, 1))))
        image.add_(torch.from_numpy(np.ascontiguousarray(params[:, None, TRANS_SLICE])))
        image.numpy()[:, self.is_iris, 2] += self.config.iris_depth_bias_cm * scale
        # The head turns on the neck: the lower neck of a target stays where the source has it.
        image[1:] = torch.lerp(image[:1], image[1:], self._follow)
        normals = vertex_normals_torch(shape[0], self._corners, self._incidence)  # (N, 3)
        facing = torch.from_numpy(rotation[:, 2, :]) @ normals.T  # (B, N) normal z in each view
        attributes = self._buffer(params.shape[0])
        # the expression shading (torch) written by a second thread alongside the other
        # attributes (numpy): both release the GIL in their array work
        shading = self._shading_worker().submit(
            self._write_expression_shading,
            attributes[:, : self._mouth_start, EXPRESSION_SHADE],
            params[:, EXPR_SLICE],
            normals,
            rotation[0],
        )
        # Canvas pixel x (centres at integers) lies at (x + 0.5) / d on the render, whose pixel
        # centres pnccrender samples at +0.5. The source last, as in the attributes.
        vertices = torch.empty_like(image)
        torch.addcmul(self._raster_offset, image[1:], self._raster_scale, out=vertices[:-1])
        torch.addcmul(self._raster_offset, image[:1], self._raster_scale, out=vertices[-1:])
        self._attributes(attributes, image, facing.numpy(), shape.numpy())
        shading.result()
        d = self.config.downscale
        h, w = -(-height // d), -(-width // d)
        k = targets.shape[0]
        result = pnccrender.render(
            vertices.numpy(),
            self.triangles,
            attributes,
            h,
            w,
            num_threads=self.config.num_threads,
        )
        source_render = result.image[k].copy()
        target_render = result.image[:k]
        if self.config.mouth_detail and self.contract.mouth_detail and d > 1:
            detail = self._mouth_detail(image[1:], attributes[:k], target_render, height, width)
            if detail is not None and detail.size <= h * w * N_CHANNELS:
                result.image[k].reshape(-1)[: detail.size] = detail.reshape(-1)
                target_render = result.image[: k + 1]  # the detail in the source's place
            elif detail is not None:
                target_render = np.concatenate([target_render, pack_mouth_detail(detail, h, w)])
        return source_render, target_render

    def _mouth_detail(
        self,
        image: torch.Tensor,
        attributes: np.ndarray,
        target_render: np.ndarray,
        height: int,
        width: int,
    ) -> np.ndarray | None:
        """(K, rows, cols, MOUTH_DETAIL_CHANNELS) float32: the MOUTH_DETAIL channels rendered at
        canvas resolution in :func:`mouth_detail_window` (the mouth interior drawn, and the
        skin within ``mouth_detail_reach_cm``: where the skin hides the interior the reduced
        render shows none, and the reenactor takes the detail only where it shows some); None
        when no target shows its mouth interior.
        image: (K, N, 3) canvas pixels of the targets; attributes: (K, N, C) their attributes;
        target_render: (K, h, w, C) the targets' reduced render."""
        d = self.config.downscale
        alpha = torch.from_numpy(target_render[..., MOUTH_ALPHA])
        y0, y1, x0, x1 = mouth_detail_window(alpha, d, height, width, MOUTH_DETAIL_MARGIN)
        if y0 >= y1 or x0 >= x1:
            return None
        origin = torch.tensor([PIXEL_CENTRE - x0, PIXEL_CENTRE - y0, 0.0])
        vertices = (image[:, self._detail_vertices] + origin).numpy()
        channels = attributes[:, self._detail_vertices, MOUTH_DETAIL]
        return pnccrender.render(
            vertices,
            self._detail_triangles,
            channels,
            y1 - y0,
            x1 - x0,
            num_threads=self.config.num_threads,
        ).image

    def _expression_shading(
        self, expression: np.ndarray, source_normals: torch.Tensor, source_rotation: np.ndarray
    ) -> torch.Tensor:
        """(B, m) float32 EXPRESSION_SHADE of the first m vertices (module docstring): target
        shade / source shade - 1 under one light in the source's pose, 0 for the source itself.
        expression: (B, 55) weights, the source's first; source_normals: (N, 3) of the source
        mesh; source_rotation: (3, 3) model -> view. A target's normals are the source's plus
        the expression change times each blendshape's normal change (linearised: one matmul
        instead of a normal computation per mesh). A target is lit at most
        ``lighten_beyond_neutral`` brighter than the source with a neutral expression (computed
        the same way, one more row): the folds the source has lighten, little else."""
        cfg = self.config
        b = expression.shape[0]
        limited = cfg.lighten_beyond_neutral < cfg.shade_ratio_max - 1.0
        if limited:  # one more row: the source with a neutral expression
            expression = np.concatenate([expression, np.zeros_like(expression[:1])])
        delta = torch.from_numpy(np.ascontiguousarray(expression - expression[:1]))
        source = source_normals.index_select(0, self._shaded).reshape(1, -1)
        normals = torch.addmm(source, delta, self._normal_basis).reshape(delta.shape[0], -1, 3)
        normals = torch.nn.functional.normalize(normals, dim=2)  # (B, S, 3)
        light = torch.tensor(cfg.light, dtype=torch.float32)
        light = torch.from_numpy(source_rotation.astype(np.float32)).T @ (light / light.norm())
        lit = normals @ light  # (B, S)
        shade = cfg.shade_ambient + (1.0 - cfg.shade_ambient) * lit.clamp_min(0.0)
        change = (shade[1:] / shade[:1].clamp_min(1e-3) - 1.0).T.contiguous()  # (S, K)
        change = self._smooth(change, cfg.shade_smooth_passes)
        broad = self._smooth(change, cfg.fold_passes)
        change = cfg.broad_gain * broad + cfg.fold_gain * (change - broad)
        change = change.clamp(cfg.shade_ratio_min - 1.0, cfg.shade_ratio_max - 1.0)
        if limited:
            neutral = change[:, -1:].clamp_min(0.0)
            change = torch.minimum(change[:, :-1], neutral + cfg.lighten_beyond_neutral)
        out = torch.zeros(b, self._mouth_start)
        out[1:, self._shaded] = (change * self._shade_weight).T
        return out

    def _smooth(self, values: torch.Tensor, passes: int) -> torch.Tensor:
        """``passes`` means over each vertex and its 1-ring of values (S, D) on the face."""
        for _ in range(passes):
            values = self._ring_mean @ values
        return values

    def _buffer(self, b: int) -> np.ndarray:
        """The (b, N, C) float32 attribute buffer kept between calls (not thread-safe), its
        channels that never change (COVERAGE, the mouth channels off the mouth, MOUTH_ALPHA)
        set when b changes. Its rows are the meshes in pnccrender's order, the source last
        (:meth:`render`'s arguments have it first)."""
        out = self._attribute_buffer
        if out.shape[0] != b:
            m = self._mouth_start
            out = np.zeros((b, self.n_vertices, self.contract.n_channels), np.float32)
            out[:, :, COVERAGE] = 1.0
            out[:, m:, MOUTH_ALPHA] = 1.0
            if self._pncc is not None:
                out[:, :, PNCC_FIRST : PNCC_FIRST + 3] = self._pncc
            self._attribute_buffer = out
        return out

    def _write_expression_shading(
        self,
        target: np.ndarray,
        expression: np.ndarray,
        source_normals: torch.Tensor,
        source_rotation: np.ndarray,
    ) -> None:
        """:meth:`_expression_shading` written into target (B, m) float32, the
        EXPRESSION_SHADE of the buffer's non-mouth vertices (0 on the mouth, set once)."""
        change = self._expression_shading(expression, source_normals, source_rotation)
        _write_rolled(target, change.numpy())

    def _attributes(
        self,
        out: np.ndarray,
        image: torch.Tensor,
        facing: np.ndarray,
        model_space: np.ndarray,
    ) -> None:
        """Write the per-vertex attributes that change per call into out (B, N, C) float32,
        the :meth:`_buffer` (all but EXPRESSION_SHADE). image: (B, N, 3) canvas pixels;
        facing: (B, N) normal z in each view; model_space: (B, N, 3) cm."""
        cfg = self.config
        m = self._mouth_start
        torch.from_numpy(out)[:, :, SRC_X : SRC_Z + 1] = image[0]
        grazing = _smoothstep(facing[:, :m], cfg.grazing_low, cfg.grazing_high)
        grazing *= grazing[:1]
        grazing *= self._static_weight[:m]
        eye = self._eye_index
        grazing[:, eye] = self._static_weight[eye]
        _write_rolled(out[:, :m, WARP_WEIGHT], grazing)  # 0 on the mouth (set once)
        depth_behind = np.maximum(self._cavity_front_z - model_space[:, m:, 2], 0.0)
        shades = mouth_shades(self.mouth_material[m:], facing[:, m:], depth_behind, cfg)
        shades[:, :, 0] *= self._teeth_shade
        _write_rolled(out[:, m:, MOUTH_SHADES], shades)

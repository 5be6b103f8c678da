"""Convert an upstream ICT-FaceKit ``FaceXModel/`` folder into the project's ``ict_facekit.npz``.

Input (upstream ICT-VGL/ICT-FaceKit, folder ``FaceXModel/``): ``generic_neutral_mesh.obj``,
``identity000.obj`` ... ``identityNNN.obj``, one ``<expression>.obj`` per blendshape (those of
``vertex_indices.json["expressions"]`` plus ``cheekRaiser_L/R``, which upstream ships but does not
list) and ``vertex_indices.json``. Output: the npz format of docs/assets.md. Set-up runs it
through :mod:`export.fetch_ict`, which downloads and verifies the upstream files first.

    python -m export.convert_ict path/to/FaceXModel [--out build/assets/ict-facekit/ict_facekit.npz]
"""

from __future__ import annotations

import argparse
import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from reenact.assets import ICT_NPZ, ict_build_dir
from reenact.morphable import MATERIAL_NAMES

NEUTRAL_OBJ = "generic_neutral_mesh.obj"
VERTEX_INDICES_JSON = "vertex_indices.json"
# Blendshapes upstream ships as OBJ files but leaves out of vertex_indices.json (FACS AU6);
# appended after the listed ones, in this order.
UNLISTED_EXPRESSIONS = ("cheekRaiser_L", "cheekRaiser_R")
_IDENTITY_OBJ = re.compile(r"identity(\d+)\.obj")


@dataclass(frozen=True)
class ObjMesh:
    """The geometry of one OBJ file, polygons fanned into triangles."""

    vertices: np.ndarray  # (N, 3) float64, as written in the file
    triangles: np.ndarray  # (T, 3) int32, 0-based vertex ids
    triangle_group: np.ndarray  # (T,) int32, index into ``groups`` (-1: before any ``usemtl``)
    groups: tuple[str, ...]  # ``usemtl`` names in order of first appearance


def _lines_with(text: str, keyword: str) -> list[str]:
    """The payloads of the lines of ``text`` that start with ``keyword`` and a space."""
    prefix = keyword + " "
    return [line[len(prefix) :] for line in text.splitlines() if line.startswith(prefix)]


def parse_obj_vertices(text: str) -> np.ndarray:
    """The ``v x y z`` positions of an OBJ text: (N, 3) float64 (extra columns such as colours are
    not supported)."""
    rows = _lines_with(text, "v")
    values = np.array(" ".join(rows).split(), dtype=np.float64)
    if values.size != 3 * len(rows):
        raise ValueError("every OBJ vertex line must hold exactly x y z")
    return values.reshape(-1, 3)


def _fan(polygon_ids: np.ndarray) -> np.ndarray:
    """Polygons (P, k) of one size k >= 3 -> triangles (P * (k - 2), 3) fanned from vertex 0."""
    k = polygon_ids.shape[1]
    fans = [polygon_ids[:, [0, i, i + 1]] for i in range(1, k - 1)]
    return np.stack(fans, axis=1).reshape(-1, 3)


def parse_obj(text: str) -> ObjMesh:
    """Vertices, triangles and ``usemtl`` groups of an OBJ text.

    Faces may be ``f a b c ...`` with ``a/t/n`` style references; every polygon is fanned into
    triangles from its first vertex, in file order. Relative (negative) indices are not supported.
    """
    vertices = parse_obj_vertices(text)
    groups: list[str] = []
    faces: list[str] = []
    face_group: list[int] = []
    current = -1
    for line in text.splitlines():
        if line.startswith("f "):
            faces.append(line[2:])
            face_group.append(current)
        elif line.startswith("usemtl "):
            name = line[7:].strip()
            if name not in groups:
                groups.append(name)
            current = groups.index(name)
    sizes = np.array([len(f.split()) for f in faces], dtype=np.int64)
    if np.any(sizes < 3):
        raise ValueError("an OBJ face has fewer than 3 vertices")
    refs = re.sub(r"/\S*", "", " ".join(faces)).split()
    ids = np.array(refs, dtype=np.int64) - 1
    if ids.size and (ids.min() < 0 or ids.max() >= len(vertices)):
        raise ValueError("OBJ face index out of range (relative indices are not supported)")
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    group_of_face = np.array(face_group, dtype=np.int32)
    face_tris = np.zeros(len(faces), dtype=np.int64)  # triangles per face, to keep file order
    parts, part_faces = [], []
    for k in np.unique(sizes):
        which = np.flatnonzero(sizes == k)
        polygon_ids = ids[starts[which, None] + np.arange(k)]
        parts.append(_fan(polygon_ids))
        part_faces.append(np.repeat(which, k - 2))
        face_tris[which] = k - 2
    triangles = np.concatenate(parts) if parts else np.zeros((0, 3), np.int64)
    owner = np.concatenate(part_faces) if parts else np.zeros(0, np.int64)
    order = np.argsort(owner, kind="stable")  # back to file order, fan order kept within a face
    return ObjMesh(
        vertices=vertices,
        triangles=triangles[order].astype(np.int32),
        triangle_group=group_of_face[owner[order]],
        groups=tuple(groups),
    )


def read_obj(path: str | Path) -> ObjMesh:
    """:func:`parse_obj` of a file."""
    return parse_obj(Path(path).read_text())


def read_obj_vertices(path: str | Path) -> np.ndarray:
    """:func:`parse_obj_vertices` of a file: (N, 3) float64."""
    return parse_obj_vertices(Path(path).read_text())


def _offsets(folder: Path, stems: list[str], neutral: np.ndarray) -> np.ndarray:
    """``<stem>.obj - neutral`` for every stem: (len(stems), N, 3) float16."""
    out = np.empty((len(stems), *neutral.shape), dtype=np.float16)
    for i, stem in enumerate(stems):
        path = folder / f"{stem}.obj"
        if not path.is_file():
            raise FileNotFoundError(f"ICT-FaceKit blendshape {path} is missing")
        verts = read_obj_vertices(path)
        if verts.shape != neutral.shape:
            raise ValueError(f"{path} has {len(verts)} vertices, the neutral mesh {len(neutral)}")
        out[i] = verts - neutral  # float64 difference, then rounded once to float16
    return out


def identity_stems(folder: Path) -> list[str]:
    """``identity000`` ... in numeric order; they must be numbered 0..n-1 without gaps."""
    found = sorted(
        (int(m.group(1)), m.group(0)[:-4])
        for p in folder.iterdir()
        if (m := _IDENTITY_OBJ.fullmatch(p.name))
    )
    if [n for n, _ in found] != list(range(len(found))) or not found:
        raise ValueError(f"{folder} must hold identity000.obj ... numbered without gaps")
    return [stem for _, stem in found]


def convert(
    facex_dir: str | Path,
    out_path: str | Path | None = None,
    extra_expressions: tuple[str, ...] = UNLISTED_EXPRESSIONS,
) -> Path:
    """Convert ``facex_dir`` (an upstream ``FaceXModel/`` folder) into the npz at ``out_path``
    (default ``ict_build_dir()/ict_facekit.npz``). Returns the written path."""
    folder = Path(facex_dir)
    out = Path(out_path) if out_path else ict_build_dir() / ICT_NPZ
    meta = json.loads((folder / VERTEX_INDICES_JSON).read_text())
    neutral_mesh = read_obj(folder / NEUTRAL_OBJ)
    unknown = set(neutral_mesh.groups) - set(MATERIAL_NAMES)
    if unknown or np.any(neutral_mesh.triangle_group < 0):
        raise ValueError(f"{NEUTRAL_OBJ}: faces outside the known usemtl groups {MATERIAL_NAMES}")
    to_material = np.array([MATERIAL_NAMES.index(g) for g in neutral_mesh.groups], np.int8)
    neutral = neutral_mesh.vertices
    expression_names = [*meta["expressions"], *extra_expressions]
    arrays = {
        "neutral": neutral.astype(np.float32),
        "identity_basis": _offsets(folder, identity_stems(folder), neutral),
        "expression_basis": _offsets(folder, expression_names, neutral),
        "expression_names": np.array(expression_names, dtype=str),
        "triangles": neutral_mesh.triangles,
        "triangle_material": to_material[neutral_mesh.triangle_group],
        "material_names": np.array(MATERIAL_NAMES, dtype=str),
        "landmarks_68": np.asarray(meta["idx_to_landmark_verts"], np.int32),
        "fitting_vertices": np.asarray(meta["idx_to_fitting_verts"], np.int32),
        "rigid_vertices": np.asarray(meta["idx_to_rigid_verts"], np.int32),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp.npz")
    np.savez_compressed(tmp, **arrays)
    tmp.replace(out)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("facex_dir", type=Path, help="the upstream FaceXModel/ folder")
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help=f"output npz (default: {ict_build_dir() / ICT_NPZ})",
    )
    args = parser.parse_args(argv)
    path = convert(args.facex_dir, args.out)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

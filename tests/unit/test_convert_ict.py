"""The ICT-FaceKit converter: real upstream OBJ files and a small synthetic FaceXModel folder."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from export.convert_ict import (
    NEUTRAL_OBJ,
    UNLISTED_EXPRESSIONS,
    convert,
    main,
    parse_obj,
    read_obj,
    read_obj_vertices,
)
from reenact.assets import ict_dir_candidates, ict_model_path
from reenact.morphable import MATERIAL_NAMES, MorphableModel


@pytest.fixture(scope="module")
def shipped() -> dict[str, np.ndarray]:
    with np.load(ict_model_path(), allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


@pytest.fixture(scope="module")
def upstream_dir() -> Path:
    """A model folder ($REENACT_ICT_DIR) that also holds two upstream sample OBJ files."""
    folder = next((d for d in ict_dir_candidates() if (d / NEUTRAL_OBJ).is_file()), None)
    if folder is None:
        pytest.skip("no model folder holds the upstream sample OBJ files")
    return folder


@pytest.fixture(scope="module")
def neutral_mesh(upstream_dir):
    return read_obj(upstream_dir / NEUTRAL_OBJ)


def test_real_neutral_mesh_matches_shipped_npz(neutral_mesh, shipped):
    assert np.array_equal(neutral_mesh.vertices.astype(np.float32), shipped["neutral"])
    assert np.array_equal(neutral_mesh.triangles, shipped["triangles"])
    assert neutral_mesh.groups == MATERIAL_NAMES
    assert np.array_equal(neutral_mesh.triangle_group, shipped["triangle_material"])


def test_real_blendshape_matches_shipped_npz(upstream_dir, neutral_mesh, shipped):
    jaw_open = read_obj_vertices(upstream_dir / "jawOpen.obj")
    row = list(shipped["expression_names"]).index("jawOpen")
    offset = (jaw_open - neutral_mesh.vertices).astype(np.float16)
    assert np.array_equal(offset, shipped["expression_basis"][row])
    assert np.abs(offset).max() > 1.0  # the jaw really moves


def test_parse_obj_fans_polygons_in_file_order():
    text = "\n".join(
        [
            "# comment",
            "v 0 0 0",
            "v 1 0 0",
            "v 1 1 0",
            "v 0 1 0",
            "v 2 0 0",
            "vt 0.5 0.5",
            "f 1 2 3",  # before any usemtl
            "usemtl A",
            "f 1/1 2/1 3/1 4/1 5/1",
            "usemtl B",
            "f 5//1 4//1 3//1",
            "usemtl A",
            "f 2 3 4",
        ]
    )
    mesh = parse_obj(text)
    assert mesh.vertices.shape == (5, 3)
    assert mesh.groups == ("A", "B")
    expected = [[0, 1, 2], [0, 1, 2], [0, 2, 3], [0, 3, 4], [4, 3, 2], [1, 2, 3]]
    assert mesh.triangles.tolist() == expected
    assert mesh.triangle_group.tolist() == [-1, 0, 0, 0, 1, 0]


def test_parse_obj_rejects_bad_indices():
    with pytest.raises(ValueError, match="out of range"):
        parse_obj("v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 4\n")


def write_obj(path: Path, vertices: np.ndarray, faces: str = "") -> None:
    lines = ["# synthetic", "mtllib x.mtl"] + [f"v {x:.6f} {y:.6f} {z:.6f}" for x, y, z in vertices]
    path.write_text("\n".join(lines) + "\n" + faces)


def write_synthetic_facex(folder: Path, seed: int = 0) -> dict:
    """Write a 5-vertex model in the upstream FaceXModel/ layout into ``folder``: a quad in M_Face
    and a triangle in M_Teeth, 2 identities, 3 listed expressions plus the unlisted
    cheekRaiser_L/R. Returns the true neutral (5, 3) and identity / expression offsets."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    neutral = rng.normal(0, 5, (5, 3))
    faces = "usemtl M_Face\nf 1/1/1 2/2/2 3/3/3 4/4/4\nusemtl M_Teeth\nf 3/1 4/2 5/3\n"
    write_obj(folder / NEUTRAL_OBJ, neutral, faces)
    listed = ["jawOpen", "mouthSmile_L", "eyeBlink_R"]
    truth = {"neutral": neutral, "identity": [], "expression": []}
    for i in range(2):
        offset = rng.normal(0, 0.5, (5, 3))
        write_obj(folder / f"identity{i:03d}.obj", neutral + offset, faces)
        truth["identity"].append(offset)
    for name in [*listed, *UNLISTED_EXPRESSIONS]:
        offset = rng.normal(0, 0.5, (5, 3))
        write_obj(folder / f"{name}.obj", neutral + offset, faces)
        truth["expression"].append(offset)
    meta = {
        "expressions": listed,
        "idx_to_landmark_verts": [4, 0],
        "idx_to_fitting_verts": [0, 1, 2],
        "idx_to_rigid_verts": [3],
    }
    (folder / "vertex_indices.json").write_text(json.dumps(meta))
    return truth


@pytest.fixture
def synthetic_facex(tmp_path) -> tuple[Path, dict]:
    folder = tmp_path / "FaceXModel"
    return folder, write_synthetic_facex(folder)


def test_synthetic_round_trip(synthetic_facex, tmp_path):
    folder, truth = synthetic_facex
    out = convert(folder, tmp_path / "out" / "model.npz")
    model = MorphableModel.load(out)
    assert np.allclose(model.neutral, truth["neutral"], atol=1e-5)
    assert np.allclose(model.identity_basis, truth["identity"], atol=2e-3)
    assert np.allclose(model.expression_basis, truth["expression"], atol=2e-3)
    assert model.expression_names == (
        "jawOpen",
        "mouthSmile_L",
        "eyeBlink_R",
        *UNLISTED_EXPRESSIONS,
    )
    assert model.triangles.tolist() == [[0, 1, 2], [0, 2, 3], [2, 3, 4]]
    assert model.triangles_of("M_Teeth").tolist() == [[2, 3, 4]]
    assert model.landmarks_68.tolist() == [4, 0]
    assert model.rigid_vertices.tolist() == [3]
    with np.load(out, allow_pickle=False) as z:
        assert tuple(z["material_names"]) == MATERIAL_NAMES
        assert z["identity_basis"].dtype == np.float16
        assert z["triangle_material"].dtype == np.int8
        assert z["fitting_vertices"].tolist() == [0, 1, 2]
    expected = truth["neutral"] + truth["identity"][1] + 0.5 * truth["expression"][3]
    shaped = model.shape(np.array([0.0, 1.0]), np.array([0.0, 0.0, 0.0, 0.5, 0.0]))
    assert np.allclose(shaped, expected, atol=3e-3)


def test_cli_and_missing_blendshape(synthetic_facex, tmp_path, capsys):
    folder, _ = synthetic_facex
    out = tmp_path / "cli.npz"
    assert main([str(folder), "--out", str(out)]) == 0
    assert out.is_file() and str(out) in capsys.readouterr().out
    (folder / "cheekRaiser_R.obj").unlink()
    with pytest.raises(FileNotFoundError, match="cheekRaiser_R"):
        convert(folder, tmp_path / "again.npz")
    assert not (tmp_path / "again.npz").exists()

"""The morphable model: pose convention, decode (NumPy) and the PyTorch decoder."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from reenact import morphable_torch
from reenact.morphable import (
    EXPR_SLICE,
    ID_SLICE,
    MATERIAL_NAMES,
    N_PARAMS,
    ROT_SLICE,
    SCALE_SLICE,
    TRANS_SLICE,
    project,
    rotation_angles,
    rotation_matrix,
)
from reenact.morphable_torch import MorphableDecoder

NOSE_TIP = np.array([0.0, 0.0, 1.0], np.float32)  # +z: out of the face


def elementary(axis: int, angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    i, j = [(1, 2), (2, 0), (0, 1)][axis]
    r = np.eye(3)
    r[i, i], r[i, j], r[j, i], r[j, j] = c, -s, s, c
    return r


def random_params(batch: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    params = np.zeros((batch, N_PARAMS), np.float32)
    params[:, ID_SLICE] = rng.normal(0, 1, (batch, 100))
    params[:, EXPR_SLICE] = rng.uniform(0, 1, (batch, 55)) * (rng.uniform(size=(batch, 55)) < 0.2)
    params[:, ROT_SLICE] = np.radians(rng.uniform(-30, 30, (batch, 3)))
    params[:, TRANS_SLICE] = rng.uniform([60, 60, -50], [130, 130, 50], (batch, 3))
    params[:, SCALE_SLICE] = rng.uniform(8, 12, (batch, 1))
    return params


def test_model_arrays(model):
    assert model.neutral.shape == (26719, 3) and model.neutral.dtype == np.float32
    assert model.identity_basis.shape == (100, 26719, 3)
    assert model.expression_basis.dtype == np.float32
    assert len(model.expression_names) == 55 and model.expression_names[-1] == "cheekRaiser_R"
    assert model.landmarks_68.shape == (68,)
    face = model.triangles_of("M_Face")
    assert 0 < len(face) < len(model.triangles) and face.max() <= 9408
    assert len(model.triangles_of(*MATERIAL_NAMES)) == len(model.triangles)


def test_rotation_composition_order():
    pitch, yaw, roll = 0.3, -0.5, 0.2
    expected = elementary(2, roll) @ elementary(1, yaw) @ elementary(0, pitch)
    assert np.allclose(rotation_matrix(pitch, yaw, roll), expected, atol=1e-6)


def test_rotation_batched_and_inverse():
    angles = np.radians(np.random.default_rng(1).uniform(-80, 80, (10, 3)))
    rot = rotation_matrix(angles[:, 0], angles[:, 1], angles[:, 2])
    assert rot.shape == (10, 3, 3)
    assert np.allclose(rot @ rot.transpose(0, 2, 1), np.eye(3), atol=1e-5)
    assert np.allclose(np.linalg.det(rot), 1.0, atol=1e-5)
    assert np.allclose(rotation_angles(rot), angles, atol=1e-5)


def test_angle_signs_in_the_image():
    """Positive yaw turns the nose to image right, positive pitch turns it down (image +y)."""
    zero = np.zeros(3, np.float32)
    yawed = project(NOSE_TIP[None], rotation_matrix(0.0, 0.3, 0.0), zero, 1.0)[0]
    pitched = project(NOSE_TIP[None], rotation_matrix(0.3, 0.0, 0.0), zero, 1.0)[0]
    assert yawed[0] > 0.2 and pitched[1] > 0.2


def test_project_flips_y_and_scales():
    verts = np.array([[1.0, 2.0, 3.0]], np.float32)
    out = project(verts, np.eye(3), np.array([10.0, 20.0, 30.0]), 2.0)
    assert np.allclose(out, [[12.0, 16.0, 36.0]])
    batched = project(
        verts[None].repeat(2, 0), np.eye(3)[None].repeat(2, 0), np.zeros((2, 3)), [1, 2]
    )
    assert batched.shape == (2, 1, 3) and np.allclose(batched[1], [[2.0, -4.0, 6.0]])


def test_decode_identity_pose_is_neutral(model):
    params = np.zeros((1, N_PARAMS), np.float32)
    params[0, 161] = 1.0
    assert np.allclose(model.decode(params)[0], model.neutral * [1, -1, 1])


def test_decode_matches_shape_then_project(model):
    params = random_params(2)
    verts = model.shape(params[:, ID_SLICE], params[:, EXPR_SLICE])
    rot = rotation_matrix(*params[:, ROT_SLICE].T)
    expected = project(verts, rot, params[:, TRANS_SLICE], params[:, 161])
    decoded = model.decode(params)
    assert decoded.shape == (2, 26719, 3)
    assert np.allclose(decoded, expected, atol=1e-3)
    ids = np.array([5, 0, 9000, 26718])
    assert np.allclose(model.decode(params, vertex_ids=ids), decoded[:, ids], atol=1e-3)


def test_shape_single_and_batch(model):
    params = random_params(2)
    batch = model.shape(params[:, ID_SLICE], params[:, EXPR_SLICE])
    single = model.shape(params[1, ID_SLICE], params[1, EXPR_SLICE])
    assert single.shape == (26719, 3) and np.allclose(single, batch[1], atol=1e-5)
    jaw = np.zeros(55, np.float32)
    jaw[model.expression_names.index("jawOpen")] = 1.0
    opened = model.shape(np.zeros(100, np.float32), jaw)
    assert np.allclose(opened - model.neutral, model.expression_basis[26], atol=1e-6)


def test_decode_rejects_wrong_layout(model):
    with pytest.raises(ValueError, match="162"):
        model.decode(np.zeros((1, 155), np.float32))


def test_torch_rotation_matches_numpy():
    angles = np.radians(np.random.default_rng(2).uniform(-60, 60, (5, 3))).astype(np.float32)
    rot = morphable_torch.rotation_matrix(torch.from_numpy(angles))
    assert np.allclose(rot.numpy(), rotation_matrix(*angles.T), atol=1e-6)
    assert np.allclose(morphable_torch.rotation_angles(rot).numpy(), angles, atol=1e-5)


@pytest.fixture(scope="module")
def decoder(model) -> MorphableDecoder:
    return MorphableDecoder(model)


def test_torch_decoder_matches_numpy(model, decoder):
    params = random_params(3, seed=3)
    expected = model.decode(params)
    out = decoder(torch.from_numpy(params)).numpy()
    scale = np.abs(expected).max()
    assert np.abs(out - expected).max() <= 1e-4 * scale


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")
def test_torch_decoder_vertex_subset_and_script(model, decoder):
    ids = np.array([26718, 3, 6156, 21451])
    subset = MorphableDecoder(model, vertex_ids=ids)
    params = torch.from_numpy(random_params(2, seed=4))
    full = decoder(params)
    assert torch.allclose(subset(params), full[:, ids], atol=1e-3)
    scripted = torch.jit.script(subset)
    assert torch.allclose(scripted(params), subset(params), atol=1e-5)


def test_torch_decoder_gradients(model):
    subset = MorphableDecoder(model, vertex_ids=np.arange(100))
    params = torch.from_numpy(random_params(1, seed=5)).requires_grad_(True)
    subset(params).sum().backward()
    assert torch.isfinite(params.grad).all() and params.grad[:, ROT_SLICE].abs().sum() > 0

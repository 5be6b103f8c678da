"""Shapes of every network at both widths (intermediate sizes too) and traced == eager."""

from __future__ import annotations

import pytest
import torch

from reenact.neural.config import FULL, NARROW, PREDICTOR_FULL, PREDICTOR_NARROW
from reenact.neural.discriminators import PatchDiscriminator
from reenact.neural.networks import (
    EnhancingNetwork,
    HybridReenactor,
    MappingNetwork,
    NeuralReenactor,
    WarpingNetwork,
)
from reenact.neural.predictor import RegressionMeshPredictor

# full width runs at a quarter of the canvas side to keep the CPU test short; the narrow width
# at the canvas size itself
SIZES = {"full": (FULL, 128, 96), "narrow": (NARROW, 512, 384)}


def _inputs(batch: int, h: int, w: int) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(0)
    image = torch.rand(batch, 3, h, w, generator=g) * 2 - 1
    pncc = torch.rand(batch, 3, h, w, generator=g)
    params = torch.rand(batch, 162, generator=g)
    params[:, 161] = 20.0
    return image, pncc, pncc.flip(0), params


def _record_shapes(module: torch.nn.Module, names: list[str]) -> dict[str, tuple[int, ...]]:
    shapes: dict[str, tuple[int, ...]] = {}
    for name in names:
        sub = module.get_submodule(name)
        sub.register_forward_hook(lambda m, i, o, n=name: shapes.__setitem__(n, tuple(o.shape)))
    return shapes


@pytest.mark.parametrize("width", ["full", "narrow"])
def test_warping_network_shapes(width):
    widths, h, w = SIZES[width]
    net = WarpingNetwork(widths)
    names = ["stem"] + [f"down.{k}" for k in range(4)] + [f"up.{k}" for k in range(4)]
    shapes = _record_shapes(net, names)
    source, pncc_s, pncc_t, _ = _inputs(1, h, w)
    warped, flow = net(source, pncc_s, pncc_t)
    ch = widths.warp_channels
    assert shapes["stem"] == (1, ch[0], h, w)
    for k in range(4):
        assert shapes[f"down.{k}"] == (1, ch[k + 1], h >> (k + 1), w >> (k + 1))
        assert shapes[f"up.{k}"] == (1, ch[3 - k], h >> (3 - k), w >> (3 - k))
    assert warped.shape == (1, 3, h, w) and flow.shape == (1, 2, h, w)
    # the flow head starts at zero: an untrained network returns the source. grid_sample maps the
    # normalised pixel centres back to pixels in float32 (error about W * 2^-23 ≈ 5e-5 px at
    # W = 384), times the largest step between neighbours (2): within 1e-4
    torch.testing.assert_close(warped, source, atol=1e-4, rtol=0)


@pytest.mark.parametrize("width", ["full", "narrow"])
def test_enhancing_and_mapping_shapes(width):
    widths, h, w = SIZES[width]
    net = EnhancingNetwork(widths)
    mapping = MappingNetwork(widths)
    names = [f"down.{k}" for k in range(3)] + [f"blocks.{k}" for k in range(3)]
    names += [f"upsample.{k}" for k in range(3)]
    shapes = _record_shapes(net, names)
    image, pncc, _, params = _inputs(2, h, w)
    latent = mapping(params)
    assert latent.shape == (2, widths.latent)
    out = net(image, pncc, latent)
    ch = widths.enhance_channels
    for k in range(3):
        assert shapes[f"down.{k}"] == (2, ch[k + 1], h >> (k + 1), w >> (k + 1))
        assert shapes[f"blocks.{k}"] == (2, ch[3 - k], h >> (3 - k), w >> (3 - k))
        assert shapes[f"upsample.{k}"] == (2, ch[2 - k], h >> (2 - k), w >> (2 - k))
    assert out.shape == (2, 3, h, w)
    assert out.min() >= -1.0 and out.max() <= 1.0


def test_enhancer_clamps_to_image_range():
    net = EnhancingNetwork(NARROW)
    torch.nn.init.constant_(net.head[-1].bias, 5.0)  # a residual far beyond [-1, 1]
    image, pncc, _, params = _inputs(1, 64, 48)
    out = net(image, pncc, MappingNetwork(NARROW)(params))
    assert torch.equal(out, torch.ones_like(out))


@pytest.mark.parametrize("width", ["full", "narrow"])
def test_discriminator_and_predictor_shapes(width):
    widths, h, w = SIZES[width]
    disc = PatchDiscriminator(widths.disc_channels)
    image, pncc, _, _ = _inputs(2, h, w)
    # 3 stride-2 layers then two stride-1 4x4 layers (padding 1): each of those loses a pixel
    assert disc(image, pncc).shape == (2, 1, h // 8 - 2, w // 8 - 2)
    pw = PREDICTOR_FULL if width == "full" else PREDICTOR_NARROW
    predictor = RegressionMeshPredictor(pw)
    shapes = _record_shapes(predictor, [f"stages.{k}" for k in range(4)] + ["lateral.0"])
    params = predictor(torch.randint(0, 256, (2, 192, 192, 3), dtype=torch.uint8))
    for k in range(4):
        side = 192 >> (k + 2)
        assert shapes[f"stages.{k}"] == (2, pw.stages[k], side, side)
    assert shapes["lateral.0"] == (2, pw.neck_channels, 24, 24)
    # zero-initialised last layer: an untrained predictor returns the statistics' mean
    torch.testing.assert_close(params, predictor.param_mean.expand(2, -1))


def test_traced_networks_equal_eager():
    torch.manual_seed(0)
    image, pncc_s, pncc_t, params = _inputs(2, 64, 48)
    reenactor = NeuralReenactor(NARROW, 64, 48).eval()
    for p in reenactor.warping.flow.parameters():  # a non-zero flow, so the warp is exercised
        torch.nn.init.normal_(p, std=0.01)
    hybrid = HybridReenactor(NARROW, 64, 48).eval()
    predictor = RegressionMeshPredictor(PREDICTOR_NARROW).eval()
    crop = torch.randint(0, 256, (2, 192, 192, 3), dtype=torch.uint8)
    cases = [
        (reenactor, (image, pncc_s, pncc_t, params)),
        (hybrid, (image, pncc_t, params)),
        (predictor, (crop,)),
    ]
    with torch.no_grad():
        for module, args in cases:
            traced = torch.jit.trace(module, args)
            eager = module(*args)
            eager = eager if isinstance(eager, tuple) else (eager,)
            got = traced(*args)
            got = got if isinstance(got, tuple) else (got,)
            for a, b in zip(got, eager, strict=True):
                torch.testing.assert_close(a, b, atol=0, rtol=0)

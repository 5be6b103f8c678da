"""The eval metrics against scikit-image and a direct SciPy computation."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
import scipy.linalg
import skimage.data
import skimage.metrics
import torch

from reenact import metrics
from reenact.neural.evaluate import EvalResult, format_table


def _pair() -> tuple[np.ndarray, np.ndarray]:
    """A real photo and a degraded copy (blur, noise, a shift): (H, W, 3) uint8 each."""
    image = skimage.data.astronaut()[100:300, 150:330]
    noise = np.random.default_rng(1).normal(0.0, 8.0, image.shape)
    degraded = cv2.GaussianBlur(image, (5, 5), 1.2).astype(np.float64) + noise
    degraded = np.roll(degraded, 2, axis=1)
    return image, np.clip(np.rint(degraded), 0, 255).astype(np.uint8)


def test_psnr_and_ssim_equal_scikit_image():
    reference, image = _pair()
    expected_psnr = skimage.metrics.peak_signal_noise_ratio(reference, image, data_range=255)
    expected_ssim = skimage.metrics.structural_similarity(
        reference, image, channel_axis=-1, data_range=255
    )
    assert abs(metrics.psnr(reference, image) - expected_psnr) < 1e-3
    assert abs(metrics.ssim(reference, image) - expected_ssim) < 1e-3
    grey_ref, grey = reference[..., 0], image[..., 0]
    assert (
        abs(
            metrics.ssim(grey_ref, grey)
            - skimage.metrics.structural_similarity(grey_ref, grey, data_range=255)
        )
        < 1e-3
    )
    assert metrics.psnr(reference, reference) == math.inf
    assert metrics.ssim(reference, reference) == pytest.approx(1.0)


def test_frechet_distance_equals_scipy():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(300, 16))
    b = rng.normal(size=(250, 16)) @ rng.normal(size=(16, 16)) * 0.5 + 0.3
    mean_a, mean_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root = scipy.linalg.sqrtm(cov_a @ cov_b).real
    expected = np.sum((mean_a - mean_b) ** 2) + np.trace(cov_a + cov_b - 2 * root)
    # float64 eigendecompositions against scipy's Schur-based square root: relative 1e-9
    assert metrics.fid(a, b) == pytest.approx(expected, rel=1e-9)
    assert metrics.fid(a, a) == pytest.approx(0.0, abs=1e-8)


class _Features(torch.nn.Module):
    """uint8 NCHW images → (B, 8) features, as a FID feature extractor file does."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(3 * 16 * 12, 8)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.linear(images.float().flatten(1) / 255.0)


def test_torchscript_features(tmp_path):
    extractor = _Features()
    images = np.random.default_rng(0).integers(0, 256, (6, 16, 12, 3), dtype=np.uint8)
    torch.jit.script(extractor).save(str(tmp_path / "f.pt"))
    features = metrics.TorchScriptFeatures(tmp_path / "f.pt")(images)
    with torch.no_grad():
        expected = extractor(torch.from_numpy(images).permute(0, 3, 1, 2)).double().numpy()
    np.testing.assert_array_equal(features, expected)


def test_lpips_is_zero_for_equal_images_and_grows_with_damage():
    torch.manual_seed(0)
    lpips = metrics.Lpips()
    reference, image = _pair()
    to_tensor = lambda x: torch.from_numpy(x).permute(2, 0, 1)[None].float() / 127.5 - 1  # noqa: E731
    torch.nn.init.constant_(lpips.lins[0].weight, 1.0)
    for lin in lpips.lins[1:]:
        torch.nn.init.constant_(lin.weight, 1.0)
    same = float(lpips(to_tensor(reference), to_tensor(reference))[0])
    damaged = float(lpips(to_tensor(reference), to_tensor(image))[0])
    assert same == 0.0 and damaged > 0.0


def test_csim_and_table():
    assert metrics.csim(np.array([1.0, 0.0]), np.array([1.0, 1.0])) == pytest.approx(2**-0.5)
    table = format_table([EvalResult("geometric", [], {"psnr": 20.123, "ssim": 0.5})])
    assert table.splitlines()[0] == "| method | LPIPS | FID | SSIM | PSNR | CSIM |"
    assert table.splitlines()[2] == "| geometric | — | — | 0.5 | 20.12 | — |"

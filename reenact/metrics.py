"""Image-quality and identity metrics of reenactments (the thesis's Table 6.1).

- :func:`psnr`, :func:`ssim`: NumPy re-implementations of scikit-image's
  ``peak_signal_noise_ratio`` and ``structural_similarity`` defaults (7x7 uniform window,
  K1 = 0.01, K2 = 0.03, sample covariance, mean over the valid interior and the channels) for
  uint8 RGB images (data range 255);
- :func:`frechet_distance`: FID's distance between two Gaussian fits of feature sets;
- :class:`Lpips`: LPIPS (Zhang et al. 2018) with the VGG-16 backbone and the learned linear
  layers, both from local files;
- :func:`csim`: cosine similarity of face embeddings (an embedder passed in).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from reenact.neural.backbones import VGG, VGG16_LPIPS_LAYERS, load_state_dict_file

SSIM_WINDOW = 7
SSIM_K1, SSIM_K2 = 0.01, 0.03
LPIPS_CHANNELS = (64, 128, 256, 512, 512)


def psnr(reference: np.ndarray, image: np.ndarray, data_range: float = 255.0) -> float:
    """Peak signal-to-noise ratio (dB) of two same-shape images; inf when they are equal."""
    mse = np.mean((np.asarray(reference, np.float64) - np.asarray(image, np.float64)) ** 2)
    return float("inf") if mse == 0 else float(10.0 * np.log10(data_range**2 / mse))


def _uniform_filter(x: np.ndarray, size: int) -> np.ndarray:
    """Mean over size x size windows (H, W) → (H - size + 1, W - size + 1), by summed areas."""
    s = np.pad(np.cumsum(np.cumsum(x, axis=0), axis=1), ((1, 0), (1, 0)))
    total = s[size:, size:] - s[:-size, size:] - s[size:, :-size] + s[:-size, :-size]
    return total / (size * size)


def _ssim_channel(a: np.ndarray, b: np.ndarray, data_range: float) -> float:
    n = SSIM_WINDOW * SSIM_WINDOW
    cov_norm = n / (n - 1)  # sample covariance, as scikit-image
    ux, uy = _uniform_filter(a, SSIM_WINDOW), _uniform_filter(b, SSIM_WINDOW)
    vx = cov_norm * (_uniform_filter(a * a, SSIM_WINDOW) - ux * ux)
    vy = cov_norm * (_uniform_filter(b * b, SSIM_WINDOW) - uy * uy)
    vxy = cov_norm * (_uniform_filter(a * b, SSIM_WINDOW) - ux * uy)
    c1, c2 = (SSIM_K1 * data_range) ** 2, (SSIM_K2 * data_range) ** 2
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
    return float(s.mean())


def ssim(reference: np.ndarray, image: np.ndarray, data_range: float = 255.0) -> float:
    """Structural similarity of (H, W) or (H, W, C) images, the mean over channels.

    scikit-image filters the whole image (reflected borders) and averages the interior
    (a margin of 3 pixels cut); the 7x7 windows of that interior lie inside the image, so the
    valid-window means here are the same numbers."""
    a, b = np.asarray(reference, np.float64), np.asarray(image, np.float64)
    if a.shape != b.shape:
        raise ValueError(f"images differ in shape: {a.shape} and {b.shape}")
    if a.ndim == 2:
        return _ssim_channel(a, b, data_range)
    return float(
        np.mean([_ssim_channel(a[..., c], b[..., c], data_range) for c in range(a.shape[2])])
    )


def gaussian_fit(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N, D) features → mean (D,), covariance (D, D) float64 (N - 1 normalisation)."""
    x = np.asarray(features, np.float64)
    return x.mean(axis=0), np.cov(x, rowvar=False)


def frechet_distance(
    mean_a: np.ndarray, cov_a: np.ndarray, mean_b: np.ndarray, cov_b: np.ndarray
) -> float:
    """``|m_a - m_b|^2 + tr(C_a + C_b - 2 (C_a C_b)^(1/2))``.

    The trace of the matrix square root is the sum of the square roots of the eigenvalues of
    ``C_a^(1/2) C_b C_a^(1/2)`` (symmetric positive semi-definite, same spectrum as C_a C_b),
    computed with symmetric eigendecompositions (no complex parts to drop)."""
    values, vectors = np.linalg.eigh(np.asarray(cov_a, np.float64))
    root_a = (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T
    inner = np.linalg.eigvalsh(root_a @ np.asarray(cov_b, np.float64) @ root_a)
    trace_root = np.sqrt(np.clip(inner, 0.0, None)).sum()
    diff = np.asarray(mean_a, np.float64) - np.asarray(mean_b, np.float64)
    return float(diff @ diff + np.trace(cov_a) + np.trace(cov_b) - 2.0 * trace_root)


def fid(features_a: np.ndarray, features_b: np.ndarray) -> float:
    """Fréchet distance of two (N, D) feature sets (FID with Inception pool features)."""
    return frechet_distance(*gaussian_fit(features_a), *gaussian_fit(features_b))


class TorchScriptFeatures:
    """A feature extractor from a local TorchScript file: images (B, H, W, 3) uint8 → (B, D).

    The file is called as ``module(images_nchw_uint8)``; a module with a ``return_features``
    argument (StyleGAN2-ADA's ``inception-2015-12-05.pt``, the FID Inception network) is called
    with ``return_features=True``."""

    def __init__(self, path: Path) -> None:
        self.module = torch.jit.load(str(path), map_location="cpu").eval()
        schema = str(self.module.forward.schema)
        self.kwargs = {"return_features": True} if "return_features" in schema else {}

    def __call__(self, images: np.ndarray) -> np.ndarray:
        batch = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2)
        with torch.inference_mode():
            return self.module(batch, **self.kwargs).reshape(len(images), -1).double().numpy()


class Lpips(nn.Module):
    """LPIPS-VGG: images (B, 3, H, W) in [-1, 1] → (B,) distances.

    Features at relu1_2 … relu5_3 of VGG-16, unit-normalised over channels, squared
    differences weighted per channel by the linear layers (1x1 convolutions, no bias),
    spatially averaged and summed over layers. ``backbone`` is a torchvision VGG-16 state dict
    file (``features.*`` keys), ``linear`` the LPIPS package's ``vgg.pth`` (keys
    ``lin<k>.model.1.weight``), both read with ``torch.load(weights_only=True)``.
    """

    def __init__(self, backbone: Path | None = None, linear: Path | None = None) -> None:
        super().__init__()
        self.vgg = VGG("vgg16", VGG16_LPIPS_LAYERS)
        self.lins = nn.ModuleList(nn.Conv2d(c, 1, 1, bias=False) for c in LPIPS_CHANNELS)
        # LPIPS's own input scaling (its ScalingLayer) in place of ImageNet's
        self.vgg.mean.copy_(torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1))
        self.vgg.std.copy_(torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1))
        if backbone is not None:
            load_state_dict_file(self.vgg.features, backbone, prefix="features.")
        if linear is not None:
            state = torch.load(linear, map_location="cpu", weights_only=True)
            for k, lin in enumerate(self.lins):
                lin.weight.data.copy_(state[f"lin{k}.model.1.weight"])
        self.requires_grad_(False)
        self.eval()

    def forward(self, a: Tensor, b: Tensor) -> Tensor:
        # LPIPS's scaling acts on [-1, 1] inputs; VGG maps x to ((x + 1) / 2 - mean) / std, so
        # pass 2x - 1 to get (x - shift) / scale with the LPIPS constants
        fa, fb = self.vgg(a * 2.0 - 1.0), self.vgg(b * 2.0 - 1.0)
        total = torch.zeros(a.shape[0], dtype=a.dtype, device=a.device)
        for lin, x, y in zip(self.lins, fa, fb, strict=True):
            x = x / (x.pow(2).sum(dim=1, keepdim=True).sqrt() + 1e-10)
            y = y / (y.pow(2).sum(dim=1, keepdim=True).sqrt() + 1e-10)
            total = total + lin((x - y).pow(2)).mean(dim=(1, 2, 3))
        return total


def csim(embedding_a: np.ndarray, embedding_b: np.ndarray) -> float:
    """Cosine similarity of two face embeddings (D,)."""
    a, b = np.asarray(embedding_a, np.float64), np.asarray(embedding_b, np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))

"""``python -m reenact eval``: self-reenactment metrics over a folder of (source, driving) pairs.

Pairs folder: one sub-folder per pair holding ``source.<ext>`` and ``driving.<ext>`` (jpg, png,
…), photos of one person. Each source is reenacted with the driving photo's expression and head
pose (its 3DMM parameters with the source's identity); the driving photo's canvas is the ground
truth. Metrics (the thesis's Table 6.1): PSNR and SSIM always; LPIPS and FID only with their
backbone weights as local files; CSIM (cosine of dlib face descriptors, source vs output) when
:mod:`reenact.identity`'s models are installed. Whatever is skipped is reported with the reason.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from reenact import face_geometry, metrics
from reenact.morphable import ID_SLICE
from reenact.neural.data import PHOTO_SUFFIXES
from reenact.reenactment import Reenactment

Generate = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]
"""source canvas (H, W, 3) uint8, source params (162,), target params (162,) → (H, W, 3) uint8."""


@dataclass
class EvalOptions:
    lpips_backbone: Path | None = None  # torchvision VGG-16 state dict
    lpips_linear: Path | None = None  # LPIPS vgg.pth
    fid_features: Path | None = None  # TorchScript feature extractor (FID Inception)
    use_identity: bool = True  # CSIM with reenact.identity when available


@dataclass
class EvalResult:
    mode: str
    rows: list[dict[str, float | str]]
    summary: dict[str, float]
    skipped: dict[str, str] = field(default_factory=dict)


def find_pairs(folder: Path) -> list[tuple[str, Path, Path]]:
    """(name, source, driving) for every pair sub-folder, sorted by name."""
    pairs = []
    for entry in sorted(p for p in folder.iterdir() if p.is_dir()):
        files = {p.stem: p for p in entry.iterdir() if p.suffix.lower() in PHOTO_SUFFIXES}
        if "source" in files and "driving" in files:
            pairs.append((entry.name, files["source"], files["driving"]))
    if not pairs:
        raise ValueError(f"{folder}: no <pair>/source.* + <pair>/driving.* found")
    return pairs


def geometric_generator(reenactment: Reenactment) -> Generate:
    """The product's geometric reenactor (from :func:`reenact.pipeline.local_reenactment`)."""

    def generate(canvas: np.ndarray, source: np.ndarray, target: np.ndarray) -> np.ndarray:
        source_render, target_render = reenactment.renderer.render(
            source, target[None], *canvas.shape[:2]
        )
        return reenactment.reenact(canvas, source_render, target_render, target[None])[0]

    return generate


def canvas_params(
    reenactment: Reenactment, data: bytes
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A photo's canvas (H, W, 3) uint8, its 3DMM params (162,) in canvas pixels and its face box
    (4,) in canvas pixels, by the product's pipeline."""
    pre = reenactment.preprocess(data)
    corners = face_geometry.apply_affine(pre.image_to_canvas, pre.face_box.reshape(2, 2))
    return pre.canvas, reenactment.source_params(pre), corners.reshape(4).astype(np.float32)


def _embedder(options: EvalOptions, skipped: dict[str, str]):
    if not options.use_identity:
        skipped["csim"] = "switched off"
        return None
    try:
        from reenact.identity import FaceEmbedder

        return FaceEmbedder()
    except (ImportError, OSError, RuntimeError) as exc:
        skipped["csim"] = f"needs an embedder: {exc}"
        return None


def evaluate(
    pairs: list[tuple[str, Path, Path]],
    reenactment: Reenactment,
    generate: Generate,
    mode: str,
    options: EvalOptions,
) -> EvalResult:
    """Metrics per pair and their means."""
    skipped: dict[str, str] = {}
    embedder = _embedder(options, skipped)
    lpips = None
    if options.lpips_backbone and options.lpips_linear:
        lpips = metrics.Lpips(options.lpips_backbone, options.lpips_linear)
    else:
        skipped["lpips"] = "needs --lpips-backbone (VGG-16) and --lpips-linear (LPIPS vgg.pth)"
    features = metrics.TorchScriptFeatures(options.fid_features) if options.fid_features else None
    if features is None:
        skipped["fid"] = "needs --fid-features (a TorchScript Inception feature extractor)"
    rows: list[dict[str, float | str]] = []
    outputs, truths = [], []
    for name, source_file, driving_file in pairs:
        canvas, source, _ = canvas_params(reenactment, source_file.read_bytes())
        truth, driving, box = canvas_params(reenactment, driving_file.read_bytes())
        target = driving.copy()
        target[ID_SLICE] = source[ID_SLICE]
        output = generate(canvas, source, target)
        row: dict[str, float | str] = {
            "pair": name,
            "psnr": metrics.psnr(truth, output),
            "ssim": metrics.ssim(truth, output),
        }
        if lpips is not None:
            to_tensor = lambda x: torch.from_numpy(x).permute(2, 0, 1)[None].float() / 127.5 - 1  # noqa: E731
            row["lpips"] = float(lpips(to_tensor(truth), to_tensor(output))[0])
        if embedder is not None:
            row["csim"] = metrics.csim(embedder.embed(canvas, box), embedder.embed(output, box))
        rows.append(row)
        outputs.append(output)
        truths.append(truth)
    # means over finite values: PSNR is infinite for a pixel-exact output (a self pair)
    summary = {
        key: float(np.mean([v for r in rows if math.isfinite(v := float(r[key]))] or [math.nan]))
        for key in rows[0]
        if key != "pair"
    }
    summary["exact"] = float(sum(r["psnr"] == math.inf for r in rows))
    if features is not None:
        if len(pairs) < 2:
            skipped["fid"] = "needs at least 2 pairs"
        else:
            summary["fid"] = metrics.fid(features(np.stack(truths)), features(np.stack(outputs)))
    return EvalResult(mode, rows, summary, skipped)


COLUMNS = ("lpips", "fid", "ssim", "psnr", "csim")  # Table 6.1's order


def format_table(results: list[EvalResult]) -> str:
    """A Markdown table like the thesis's Table 6.1: one row per mode, "—" where skipped."""
    lines = ["| method | " + " | ".join(c.upper() for c in COLUMNS) + " |"]
    lines.append("| --- |" + " --- |" * len(COLUMNS))
    for result in results:
        cells = []
        for column in COLUMNS:
            value = result.summary.get(column)
            cells.append("—" if value is None or not math.isfinite(value) else f"{value:.4g}")
        lines.append(f"| {result.mode} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_csv(path: Path, results: list[EvalResult]) -> None:
    """One line per pair and mode, and a "mean" line per mode."""
    with path.open("w", newline="") as f:
        # "exact": on the mean line, how many pairs came out pixel-exact (infinite PSNR)
        writer = csv.DictWriter(f, fieldnames=["mode", "pair", *COLUMNS, "exact"], restval="")
        writer.writeheader()
        for result in results:
            for row in result.rows:
                writer.writerow({"mode": result.mode, **row})
            writer.writerow({"mode": result.mode, "pair": "mean", **result.summary})


def neural_generator(run_folder: Path) -> Generate:
    """A trained reenactor (``run_folder``: a training's ``config.json`` and ``last.pt``, full or
    hybrid) as a :data:`Generate`, run as it is served (:mod:`reenact.reenactors.neural`): the
    learned modes' renders (geometric channels and PNCC) in, the canvas out."""
    from reenact.geometric import ReenactorRenderer
    from reenact.morphable import MorphableModel
    from reenact.reenactors import neural

    mode, module = neural.served_module(run_folder)
    renderer = ReenactorRenderer(MorphableModel.load(), contract=mode.contract)

    def generate(canvas: np.ndarray, source: np.ndarray, target: np.ndarray) -> np.ndarray:
        renders = renderer.render(source, target[None], *canvas.shape[:2])
        tensors = [torch.from_numpy(a) for a in (canvas, *renders, target[None])]
        with torch.inference_mode():
            return module(*tensors)[0].numpy()

    return generate

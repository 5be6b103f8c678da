"""Training loops of the reenactor and the regression mesh predictor.

Both: deterministic seeds (torch, and batches that depend only on seed and step), CPU or CUDA,
mixed precision on CUDA (bfloat16 where supported, else float16 with loss scaling), state-dict
checkpoints (``out/last.pt`` every ``checkpoint_every`` steps and at the end, read back with
``torch.load(weights_only=True)``), resume from ``out/last.pt``, the losses of every
``log_every``-th step appended to ``out/losses.csv`` and a progress line logged
(:mod:`logging`, logger ``reenact.neural.train``).
"""

from __future__ import annotations

import csv
import json
import logging
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import Tensor, nn

from reenact.correspondence import Correspondence
from reenact.geometric import ReenactorRenderer
from reenact.morphable import MorphableModel
from reenact.neural.backbones import VGG, ResNetEmbedder, load_state_dict_file
from reenact.neural.config import (
    PREDICTOR_WIDTHS,
    WIDTHS,
    PredictorTrainConfig,
    ReenactorTrainConfig,
    as_dict,
)
from reenact.neural.data import PredictorBatches, ReenactorBatches
from reenact.neural.discriminators import (
    PatchDiscriminator,
    crop_boxes,
    hinge_discriminator_loss,
    hinge_generator_loss,
    mask_boxes,
)
from reenact.neural.losses import FeatureLosses, PredictorLosses
from reenact.neural.networks import HybridReenactor, NeuralReenactor
from reenact.neural.predictor import RegressionMeshPredictor

LOGGER = logging.getLogger(__name__)
CHECKPOINT = "last.pt"
LOSSES_CSV = "losses.csv"
Progress = Callable[[int, dict[str, float]], None]


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


@dataclass
class Precision:
    """Autocast and loss scaling for a device: off on CPU."""

    device: torch.device
    enabled: bool

    def __post_init__(self) -> None:
        self.enabled = self.enabled and self.device.type == "cuda"
        bf16 = self.enabled and torch.cuda.is_bf16_supported()
        self.dtype = torch.bfloat16 if bf16 else torch.float16
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.enabled and not bf16)

    def autocast(self) -> AbstractContextManager:
        if not self.enabled:
            return nullcontext()
        return torch.autocast(device_type="cuda", dtype=self.dtype)

    def step(self, loss: Tensor, optimizer: torch.optim.Optimizer) -> None:
        optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(optimizer)
        self.scaler.update()


class CsvLog:
    """Appends rows of named floats to a CSV file (header from the first row written)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fields: list[str] | None = None
        if path.exists() and path.stat().st_size > 0:
            with path.open() as f:
                self.fields = next(csv.reader(f))

    def write(self, row: dict[str, float]) -> None:
        new = self.fields is None
        if new:
            self.fields = list(row)
        with self.path.open("a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=self.fields, extrasaction="ignore")
            if new:
                writer.writeheader()
            writer.writerow(row)


def save_checkpoint(path: Path, step: int, states: dict[str, dict]) -> None:
    """Writes ``{"step": step, name: state_dict, …}`` atomically (a temporary file renamed)."""
    tmp = path.with_suffix(".tmp")
    torch.save({"step": step, **states}, tmp)
    tmp.replace(path)


def load_checkpoint(path: Path, device: torch.device) -> dict:
    return torch.load(path, map_location=device, weights_only=True)


def _seed(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)


class GeometricWarp:
    """The hybrid mode's input: the geometric reenactor (TorchScript file) on each (source,
    target) pair at the stored canvas size, resized to the training size. Returns (B, 3, H, W)
    float32 in [-1, 1]."""

    def __init__(self, reenactor_file: Path) -> None:
        self.reenactor = torch.jit.load(str(reenactor_file), map_location="cpu")
        self.renderer = ReenactorRenderer(MorphableModel.load())

    def __call__(self, batch: dict[str, Tensor], height: int, width: int) -> Tensor:
        images = []
        for canvas, source, target in zip(
            batch["source_canvas"].numpy(),
            batch["source_params_canvas"].numpy(),
            batch["target_params_canvas"].numpy(),
            strict=True,
        ):
            targets = target[None]
            source_render, target_render = self.renderer.render(source, targets, *canvas.shape[:2])
            with torch.inference_mode():
                out = self.reenactor(
                    *(torch.from_numpy(a) for a in (canvas, source_render, target_render, targets))
                ).numpy()[0]
            out = cv2.resize(out, (width, height), interpolation=cv2.INTER_AREA)
            images.append(torch.from_numpy(out).permute(2, 0, 1).float() / 127.5 - 1.0)
        return torch.stack(images)


def build_generator(config: ReenactorTrainConfig) -> nn.Module:
    widths = WIDTHS[config.width]
    if config.mode == "full":
        return NeuralReenactor(widths, config.height, config.width_px)
    if config.mode == "hybrid":
        return HybridReenactor(widths, config.height, config.width_px)
    raise ValueError(f"mode must be 'full' or 'hybrid', got {config.mode!r}")


def build_feature_losses(config: ReenactorTrainConfig) -> FeatureLosses:
    vgg, embedder = VGG("vgg19"), ResNetEmbedder(input_size=config.reid_input_size)
    if config.vgg19_weights:
        load_state_dict_file(vgg.features, config.vgg19_weights, prefix="features.")
    else:
        LOGGER.warning("no vgg19_weights: the perceptual and style losses use a random VGG-19")
    if config.face_embedder_weights:
        load_state_dict_file(embedder, config.face_embedder_weights)
    else:
        LOGGER.warning("no face_embedder_weights: the ReID loss uses a random embedder")
    return FeatureLosses(vgg, embedder)


class ReenactorTrainer:
    """One generator and its discriminators; :meth:`step` is one training iteration."""

    def __init__(self, config: ReenactorTrainConfig, device: torch.device) -> None:
        self.config, self.device = config, device
        widths = WIDTHS[config.width]
        self.generator = build_generator(config).to(device)
        self.disc_warped = PatchDiscriminator(widths.disc_channels).to(device)
        self.disc_enhanced = PatchDiscriminator(widths.disc_channels).to(device)
        self.disc_mouth = PatchDiscriminator(widths.mouth_disc_channels).to(device)
        self.features = build_feature_losses(config).to(device)
        self.mouth_crop = widths.mouth_crop
        discriminators = [self.disc_enhanced, self.disc_mouth]
        if config.mode == "full":
            discriminators.append(self.disc_warped)
        params = [p for d in discriminators for p in d.parameters()]
        self.opt_g = torch.optim.Adam(
            self.generator.parameters(), config.lr_generator, betas=config.betas
        )
        self.opt_d = torch.optim.Adam(params, config.lr_discriminator, betas=config.betas)
        self.precision = Precision(device, config.mixed_precision)
        self.geometric = (
            GeometricWarp(Path(config.reenactor_model)) if config.mode == "hybrid" else None
        )

    def states(self) -> dict[str, dict]:
        return {
            "generator": self.generator.state_dict(),
            "disc_warped": self.disc_warped.state_dict(),
            "disc_enhanced": self.disc_enhanced.state_dict(),
            "disc_mouth": self.disc_mouth.state_dict(),
            "opt_g": self.opt_g.state_dict(),
            "opt_d": self.opt_d.state_dict(),
            "scaler": self.precision.scaler.state_dict(),
        }

    def load_states(self, states: dict) -> None:
        self.generator.load_state_dict(states["generator"])
        self.disc_warped.load_state_dict(states["disc_warped"])
        self.disc_enhanced.load_state_dict(states["disc_enhanced"])
        self.disc_mouth.load_state_dict(states["disc_mouth"])
        self.opt_g.load_state_dict(states["opt_g"])
        self.opt_d.load_state_dict(states["opt_d"])
        self.precision.scaler.load_state_dict(states["scaler"])

    def generate(self, batch: dict[str, Tensor]) -> tuple[Tensor | None, Tensor]:
        """(warped or None in hybrid mode, enhanced), (B, 3, H, W) each."""
        if self.geometric is not None:
            geometric = self.geometric(batch, self.config.height, self.config.width_px)
            enhanced = self.generator(
                geometric.to(self.device), batch["target_pncc"], batch["target_params"]
            )
            return None, enhanced
        return self.generator(
            batch["source"], batch["source_pncc"], batch["target_pncc"], batch["target_params"]
        )

    def _mouth(self, images: Tensor, batch: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        boxes = mask_boxes(batch["mouth_mask"])
        return crop_boxes(images, boxes, self.mouth_crop), crop_boxes(
            batch["target_pncc"], boxes, self.mouth_crop
        )

    def step(self, batch: dict[str, Tensor]) -> dict[str, float]:
        batch = {k: v.to(self.device) if k != "source_canvas" else v for k, v in batch.items()}
        weights, pncc, real = self.config.losses, batch["target_pncc"], batch["target"]
        with self.precision.autocast():
            warped, enhanced = self.generate(batch)
            fake_mouth, pncc_mouth = self._mouth(enhanced, batch)
            terms = {
                "gan_enhanced": hinge_generator_loss(self.disc_enhanced(enhanced, pncc)),
                "gan_mouth": hinge_generator_loss(self.disc_mouth(fake_mouth, pncc_mouth)),
            }
            fakes = [enhanced] if warped is None else [enhanced, warped]
            feats = self.features(fakes, real, batch["face_mask"])
            terms |= feats[0]
            terms["pixel"] = (enhanced.float() - real).abs().mean()
            if warped is not None:
                terms["gan_warped"] = hinge_generator_loss(self.disc_warped(warped, pncc))
                terms["perceptual_warped"] = feats[1]["perceptual"]
                terms["style_warped"] = feats[1]["style"]
                terms["pixel_warped"] = (warped.float() - real).abs().mean()
            reconstruction = self._reconstruction(terms)
            total_g = (
                reconstruction
                + weights.gan_enhanced * terms["gan_enhanced"]
                + weights.gan_mouth * terms["gan_mouth"]
                + weights.reid * terms["reid"]
                + weights.gan_warped * terms.get("gan_warped", torch.zeros(()))
            )
        self.precision.step(total_g, self.opt_g)
        total_d = self._discriminator_step(batch, warped, enhanced)
        out = {k: float(v.detach()) for k, v in terms.items()}
        out |= {
            "reconstruction": float(reconstruction.detach()),
            "total_g": float(total_g.detach()),
        }
        out["total_d"] = total_d
        return out

    def _reconstruction(self, terms: dict[str, Tensor]) -> Tensor:
        """λ-weighted style + perceptual + pixel terms, of the enhanced and the warped image."""
        w = self.config.losses
        total = (
            w.style * terms["style"] + w.perceptual * terms["perceptual"] + w.pixel * terms["pixel"]
        )
        if "style_warped" in terms:
            total = total + w.warped_share * (
                w.style * terms["style_warped"]
                + w.perceptual * terms["perceptual_warped"]
                + w.pixel * terms["pixel_warped"]
            )
        return total

    def _discriminator_step(
        self, batch: dict[str, Tensor], warped: Tensor | None, enhanced: Tensor
    ) -> float:
        pncc, real = batch["target_pncc"], batch["target"]
        with self.precision.autocast():
            fake = enhanced.detach()
            loss = hinge_discriminator_loss(
                self.disc_enhanced(real, pncc), self.disc_enhanced(fake, pncc)
            )
            real_mouth, pncc_mouth = self._mouth(real, batch)
            fake_mouth, _ = self._mouth(fake, batch)
            loss = loss + hinge_discriminator_loss(
                self.disc_mouth(real_mouth, pncc_mouth), self.disc_mouth(fake_mouth, pncc_mouth)
            )
            if warped is not None:
                loss = loss + hinge_discriminator_loss(
                    self.disc_warped(real, pncc), self.disc_warped(warped.detach(), pncc)
                )
        self.precision.step(loss, self.opt_d)
        return float(loss.detach())


class PredictorTrainer:
    """The regression mesh predictor distilled from the teacher's parameters in the dataset."""

    def __init__(self, config: PredictorTrainConfig, device: torch.device, targets: Tensor) -> None:
        self.config, self.device = config, device
        self.network = RegressionMeshPredictor(PREDICTOR_WIDTHS[config.width], config.crop_size)
        self.network.set_statistics(targets)
        self.network.to(device)
        table = Correspondence.load()
        self.losses = PredictorLosses(
            MorphableModel.load(),
            table.tri_vertices,
            table.barycentric,
            config.crop_size,
            config.vertex_stride,
        ).to(device)
        self.opt = torch.optim.AdamW(
            self.network.parameters(), config.lr, weight_decay=config.weight_decay
        )
        self.precision = Precision(device, config.mixed_precision)

    def states(self) -> dict[str, dict]:
        return {
            "network": self.network.state_dict(),
            "opt": self.opt.state_dict(),
            "scaler": self.precision.scaler.state_dict(),
        }

    def load_states(self, states: dict) -> None:
        self.network.load_state_dict(states["network"])
        self.opt.load_state_dict(states["opt"])
        self.precision.scaler.load_state_dict(states["scaler"])

    def step(self, batch: dict[str, Tensor]) -> dict[str, float]:
        batch = {k: v.to(self.device) for k, v in batch.items()}
        w = self.config.losses
        self.network.train()
        with self.precision.autocast():
            predicted = self.network(batch["crop"])
        terms = self.losses(
            predicted, batch["crop_params"], batch["crop_landmarks"], batch["person"]
        )
        total = (
            w.vertex * terms["vertex"]
            + w.landmark * terms["landmark"]
            + w.shape_consistency * terms["shape_consistency"]
            + w.regularisation * terms["regularisation"]
        )
        self.precision.step(total, self.opt)
        return {**{k: float(v.detach()) for k, v in terms.items()}, "total": float(total.detach())}


def _run(
    trainer: ReenactorTrainer | PredictorTrainer,
    batches: torch.utils.data.Dataset,
    config: ReenactorTrainConfig | PredictorTrainConfig,
    progress: Progress | None,
) -> dict[str, float]:
    """The loop shared by both trainings. Returns the last step's losses."""
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(as_dict(config), indent=1) + "\n")
    start = 0
    if config.resume and (out / CHECKPOINT).exists():
        states = load_checkpoint(out / CHECKPOINT, trainer.device)
        trainer.load_states(states)
        start = int(states["step"])
        LOGGER.info("resumed from %s at step %d", out / CHECKPOINT, start)
    log = CsvLog(out / LOSSES_CSV)
    loader = torch.utils.data.DataLoader(
        batches,
        batch_size=None,
        sampler=range(start, config.steps),
        num_workers=config.num_workers,
    )
    losses: dict[str, float] = {}
    clock = time.perf_counter()
    for step, batch in enumerate(loader, start=start + 1):
        losses = trainer.step(batch)
        if step % config.log_every == 0 or step == config.steps:
            seconds = (time.perf_counter() - clock) / config.log_every
            clock = time.perf_counter()
            log.write({"step": step, **losses})
            shown = " ".join(f"{k} {v:.4g}" for k, v in losses.items() if k.startswith("total"))
            LOGGER.info("step %d/%d %s %.2f s/step", step, config.steps, shown, seconds)
        if progress is not None:
            progress(step, losses)
        if step % config.checkpoint_every == 0 or step == config.steps:
            save_checkpoint(out / CHECKPOINT, step, trainer.states())
    return losses


def train_reenactor(
    config: ReenactorTrainConfig, progress: Progress | None = None
) -> dict[str, float]:
    """Trains (or resumes) the reenactor; returns the last step's losses."""
    _seed(config.seed)
    device = resolve_device(config.device)
    batches = ReenactorBatches(
        Path(config.data), config.height, config.width_px, config.batch_size, config.seed
    )
    trainer = ReenactorTrainer(config, device)
    return _run(trainer, batches, config, progress)


def train_predictor(
    config: PredictorTrainConfig, progress: Progress | None = None
) -> dict[str, float]:
    """Trains (or resumes) the regression mesh predictor; returns the last step's losses."""
    _seed(config.seed)
    device = resolve_device(config.device)
    batches = PredictorBatches(Path(config.data), config.batch_size, config.seed)
    trainer = PredictorTrainer(config, device, batches.targets())
    return _run(trainer, batches, config, progress)

"""The learned modes' home: the thesis's networks, and the hybrid, served as ``reenactor``.

- **neural**: :class:`reenact.neural.networks.NeuralReenactor` (warping, mapping and enhancing
  networks) from a trained checkpoint;
- **hybrid**: the geometric reenactor's output enhanced by :class:`reenact.neural.networks.
  HybridReenactor` (mapping and enhancing networks) from a trained checkpoint.

Both take the ``reenactor`` tensors of every mode (:mod:`reenact.reenactors.contract`; render
contract :data:`~reenact.reenactors.contract.LEARNED`: the geometric channels, then PNCC) and
return (K, H, W, 3) uint8 canvases. The networks run at their training size (h_t x w_t, the
checkpoint's ``config.json``): the canvas is shrunk to it by area averaging (as training's
``cv2.INTER_AREA``), the PNCC renders resized to it (bilinear when enlarging the half-size render,
nearest when shrinking, as training's ``cv2.INTER_NEAREST``), the target parameters moved to its
pixels, and the result enlarged bilinearly back to the canvas.

:func:`build` traces the module (``torch.jit.trace``: the networks have no data-dependent
control flow; K stays dynamic) for ``export/build_reenactor.py``. A checkpoint is a training
run's ``last.pt`` (state dicts, ``torch.load(weights_only=True)``) with its ``config.json``
beside it (:mod:`reenact.neural.train`).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from reenact.morphable import N_PARAMS, SCALE_SLICE, TRANS_SLICE
from reenact.neural.config import ReenactorTrainConfig, from_mapping
from reenact.neural.train import CHECKPOINT, build_generator
from reenact.reenactor import GeometricReenactor
from reenact.reenactors import HYBRID_MODE, NEURAL_MODE, ReenactorMode
from reenact.reenactors.contract import (
    CANVAS_HEIGHT,
    CANVAS_WIDTH,
    LEARNED,
    N_GEOMETRIC_CHANNELS,
    PNCC_FIRST,
)

TRAINING_MODES = {"full": NEURAL_MODE, "hybrid": HYBRID_MODE}  # training config mode → served


def resize_params(params: Tensor, factor: float) -> Tensor:
    """(K, 162) parameters of an image scaled by ``factor`` (pixel centres at integers): the
    torch twin of :func:`reenact.neural.data.resize_params` for one factor."""
    moved = params.clone()
    moved[:, TRANS_SLICE] = params[:, TRANS_SLICE] * factor
    moved[:, TRANS_SLICE.start : TRANS_SLICE.start + 2] += 0.5 * factor - 0.5
    moved[:, SCALE_SLICE] = params[:, SCALE_SLICE] * factor
    return moved


def _resize_pncc(render: Tensor, height: int, width: int) -> Tensor:
    """render: (B, h, w, C) float32 → its PNCC channels (B, 3, height, width)."""
    pncc = render[..., PNCC_FIRST : PNCC_FIRST + 3].permute(0, 3, 1, 2)
    if height > pncc.shape[2]:
        return F.interpolate(pncc, size=[height, width], mode="bilinear", align_corners=False)
    return F.interpolate(pncc, size=[height, width], mode="nearest")


def _to_network(canvas: Tensor, height: int, width: int) -> Tensor:
    """canvas: (B, H, W, 3) uint8 → (B, 3, height, width) float32 in [-1, 1]."""
    image = canvas.permute(0, 3, 1, 2).float() / 127.5 - 1.0
    return F.interpolate(image, size=[height, width], mode="area")


def _to_canvas(image: Tensor, height: int, width: int) -> Tensor:
    """image: (K, 3, h_t, w_t) in [-1, 1] → (K, height, width, 3) uint8."""
    image = F.interpolate(image, size=[height, width], mode="bilinear", align_corners=False)
    pixels = ((image + 1.0) * 127.5).round().clamp(0.0, 255.0)
    return pixels.to(torch.uint8).permute(0, 2, 3, 1).contiguous()


def _targets(
    target_render: Tensor, target_params: Tensor, canvas_height: int, height: int, width: int
) -> tuple[Tensor, Tensor]:
    """The K targets at the networks' height x width: their PNCC (K, 3, height, width) from
    target_render (K + n, h, w, C), and their parameters (K, 162) in those pixels."""
    k = target_params.shape[0]
    pncc = _resize_pncc(target_render[:k], height, width)
    return pncc, resize_params(target_params, height / canvas_height)


class ServedNeuralReenactor(nn.Module):
    """The neural mode's ``reenactor``: forward(source_canvas (H, W, 3) uint8, source_render
    (h, w, C) float32, target_render (K, h, w, C) float32, target_params (K, 162) float32) →
    (K, H, W, 3) uint8 (the enhanced images), C = the LEARNED contract's channel count."""

    def __init__(self, generator: nn.Module, height: int, width: int) -> None:
        super().__init__()
        self.generator = generator
        self.height, self.width = height, width

    def forward(
        self, source_canvas: Tensor, source_render: Tensor, target_render: Tensor,
        target_params: Tensor,
    ) -> Tensor:  # fmt: skip
        k = target_params.shape[0]
        source = _to_network(source_canvas.unsqueeze(0), self.height, self.width)
        source_pncc = _resize_pncc(source_render.unsqueeze(0), self.height, self.width)
        target_pncc, params = _targets(
            target_render, target_params, source_canvas.shape[0], self.height, self.width
        )
        _, enhanced = self.generator(
            source.expand(k, -1, -1, -1), source_pncc.expand(k, -1, -1, -1), target_pncc, params
        )
        return _to_canvas(enhanced, source_canvas.shape[0], source_canvas.shape[1])


class ServedHybridReenactor(nn.Module):
    """The hybrid mode's ``reenactor``: the geometric reenactor, then the learned enhancer.
    Same tensors as :class:`ServedNeuralReenactor`."""

    def __init__(self, geometric: nn.Module, enhancer: nn.Module, height: int, width: int) -> None:
        super().__init__()
        self.geometric = geometric
        self.enhancer = enhancer
        self.height, self.width = height, width

    def forward(
        self, source_canvas: Tensor, source_render: Tensor, target_render: Tensor,
        target_params: Tensor,
    ) -> Tensor:  # fmt: skip
        k = target_params.shape[0]
        warped = self.geometric(
            source_canvas,
            source_render[..., :N_GEOMETRIC_CHANNELS].contiguous(),
            target_render[:k, :, :, :N_GEOMETRIC_CHANNELS].contiguous(),
            target_params,
        )
        geometric = _to_network(warped, self.height, self.width)
        target_pncc, params = _targets(
            target_render, target_params, source_canvas.shape[0], self.height, self.width
        )
        enhanced = self.enhancer(geometric, target_pncc, params)
        return _to_canvas(enhanced, source_canvas.shape[0], source_canvas.shape[1])


def run_files(checkpoint: Path) -> tuple[Path, Path]:
    """(config.json, last.pt) of a training run, given the run folder or its checkpoint."""
    folder = checkpoint if checkpoint.is_dir() else checkpoint.parent
    weights = folder / CHECKPOINT if checkpoint.is_dir() else checkpoint
    config = folder / "config.json"
    for path in (weights, config):
        if not path.is_file():
            raise FileNotFoundError(
                f"{path} not found: a checkpoint is a training run's {CHECKPOINT} with its "
                "config.json beside it (python -m reenact train reenactor --config FILE)"
            )
    return config, weights


def load_generator(checkpoint: Path) -> tuple[ReenactorTrainConfig, nn.Module]:
    """The training config and the trained generator (eval mode) of a run."""
    config_file, weights = run_files(checkpoint)
    config = from_mapping(ReenactorTrainConfig, json.loads(config_file.read_text()))
    generator = build_generator(config)
    states = torch.load(weights, map_location="cpu", weights_only=True)
    generator.load_state_dict(states["generator"])
    return config, generator.eval()


def served_module(checkpoint: Path) -> tuple[ReenactorMode, nn.Module]:
    """The eager served module of a run, and the mode it serves."""
    config, generator = load_generator(checkpoint)
    mode = TRAINING_MODES[config.mode]
    if mode is NEURAL_MODE:
        return mode, ServedNeuralReenactor(generator, config.height, config.width_px).eval()
    if config.reenactor_model and Path(config.reenactor_model).is_file():
        geometric = torch.jit.load(config.reenactor_model, map_location="cpu")
    else:
        geometric = torch.jit.script(GeometricReenactor().eval())
    module = ServedHybridReenactor(geometric, generator, config.height, config.width_px)
    return mode, module.eval()


def example_inputs(targets: int = 2) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Inputs of the contract's shapes for tracing (blank canvas, empty renders)."""
    h, w = LEARNED.render_size()
    params = torch.zeros(targets, N_PARAMS)
    params[:, SCALE_SLICE] = 20.0
    return (
        torch.zeros(CANVAS_HEIGHT, CANVAS_WIDTH, 3, dtype=torch.uint8),
        torch.zeros(h, w, LEARNED.n_channels),
        torch.zeros(targets, h, w, LEARNED.n_channels),
        params,
    )


def trace(module: nn.Module) -> torch.jit.ScriptModule:
    """A served module traced on inputs of the contract's shapes (K stays dynamic)."""
    with warnings.catch_warnings(), torch.no_grad():
        # the tracer's notes on the Python ints and branches it fixes: the canvas and render
        # sizes, fixed by the contract (K, the only free size, stays dynamic)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        return torch.jit.trace(module, example_inputs(), check_trace=False)


def build(checkpoint: Path) -> tuple[ReenactorMode, torch.jit.ScriptModule]:
    """The traced served module of a run, and its mode."""
    mode, module = served_module(checkpoint)
    return mode, trace(module)

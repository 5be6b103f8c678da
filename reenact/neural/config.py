"""Typed configurations of the networks, losses and training runs, and their TOML/JSON reader.

Widths are configuration: :data:`FULL` is the thesis width (for GPUs), :data:`NARROW` a CPU
width with the same topology (same layers, scales and tensor sizes between blocks, fewer
channels). docs/neural.md says which channel counts were chosen and why.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

try:  # Python 3.11+
    import tomllib
except ModuleNotFoundError:  # Python 3.10: JSON configs only
    tomllib = None  # type: ignore[assignment]


@dataclass(frozen=True)
class ReenactorWidths:
    """Channel counts of the reenactor's networks (docs/neural.md, "Channel counts")."""

    warp_channels: tuple[int, ...] = (64, 128, 256, 512, 512)  # stem, then one per /2 scale
    warp_bottleneck_blocks: int = 2  # residual blocks at the coarsest scale
    mapping_hidden: int = 256
    mapping_layers: int = 4  # linear layers, the last one to the latent
    latent: int = 128  # the mapping network's output (the AdaIN style code)
    enhance_channels: tuple[int, ...] = (64, 128, 256, 512)  # stem at 1/1, then 1/2, 1/4, 1/8
    spade_hidden: int = 128  # the SPADE blocks' shared conditioning convolution
    disc_channels: tuple[int, ...] = (64, 128, 256, 512)  # PatchGAN layers
    mouth_disc_channels: tuple[int, ...] = (64, 128, 256)
    mouth_crop: int = 128  # side of the square mouth crop the mouth discriminator sees


FULL = ReenactorWidths()
NARROW = ReenactorWidths(
    warp_channels=(16, 32, 64, 128, 128),
    warp_bottleneck_blocks=1,
    mapping_hidden=64,
    mapping_layers=3,
    latent=32,
    enhance_channels=(16, 32, 64, 128),
    spade_hidden=32,
    disc_channels=(16, 32, 64, 128),
    mouth_disc_channels=(16, 32, 64),
    mouth_crop=64,
)


@dataclass(frozen=True)
class PredictorWidths:
    """Channel counts of the regression mesh predictor (backbone stages at /4, /8, /16, /32)."""

    stem: int = 32
    stages: tuple[int, ...] = (64, 128, 256, 512)
    blocks_per_stage: int = 2
    neck_channels: int = 128
    neck_layers: int = 3  # stacked BiFPN layers over the /8, /16, /32 features
    head_hidden: int = 512


PREDICTOR_FULL = PredictorWidths()
PREDICTOR_NARROW = PredictorWidths(
    stem=16,
    stages=(16, 32, 64, 128),
    blocks_per_stage=1,
    neck_channels=32,
    neck_layers=1,
    head_hidden=128,
)

WIDTHS = {"full": FULL, "narrow": NARROW}
PREDICTOR_WIDTHS = {"full": PREDICTOR_FULL, "narrow": PREDICTOR_NARROW}


@dataclass(frozen=True)
class ReenactorLossWeights:
    """The thesis's weights (docs/neural.md, "Losses"): λ = 1, 1, 1, 50, 10, 10."""

    gan_warped: float = 1.0
    gan_enhanced: float = 1.0
    gan_mouth: float = 1.0
    style: float = 50.0  # L1 between Gram matrices of VGG-19 features
    perceptual: float = 10.0  # L1 between VGG-19 features
    reid: float = 10.0  # 1 - cosine of face embeddings
    pixel: float = 0.0  # plain L1 on pixels: not in the thesis, off by default
    warped_share: float = 1.0  # the style/perceptual terms on the warped image, relative


@dataclass(frozen=True)
class PredictorLossWeights:
    """The thesis's weights for §3.1.1: λ = 50, 0.1, 1, 1."""

    vertex: float = 50.0
    landmark: float = 0.1
    shape_consistency: float = 1.0
    regularisation: float = 1.0


@dataclass(frozen=True)
class ReenactorTrainConfig:
    """``python -m reenact train reenactor --config FILE`` (every field optional in FILE)."""

    data: str = ""  # a prepared dataset folder (reenact.neural.data)
    out: str = "build/train/reenactor"  # checkpoints, losses.csv
    width: str = "narrow"  # "full" or "narrow"
    mode: str = "full"  # "full": warping + enhancing networks; "hybrid": geometric warp + enhancer
    height: int = 512  # training resolution (the canvas is resized to it)
    width_px: int = 384
    batch_size: int = 4
    steps: int = 100_000
    lr_generator: float = 1e-4
    lr_discriminator: float = 4e-4
    betas: tuple[float, float] = (0.5, 0.999)
    seed: int = 0
    device: str = "auto"  # "auto", "cpu", "cuda", "cuda:1", ...
    mixed_precision: bool = True  # bf16/fp16 autocast on CUDA only
    log_every: int = 10
    checkpoint_every: int = 1000
    resume: bool = True  # continue from out/last.pt when it exists
    vgg19_weights: str = ""  # local state dict (torchvision layout); "" = random (tests only)
    face_embedder_weights: str = ""  # local state dict of the ReID embedder; "" = random
    reid_input_size: int = 112  # side of the face crop the ReID embedder sees
    reenactor_model: str = ""  # hybrid mode: the geometric reenactor TorchScript file
    num_workers: int = 0
    losses: ReenactorLossWeights = field(default_factory=ReenactorLossWeights)


@dataclass(frozen=True)
class PredictorTrainConfig:
    """``python -m reenact train predictor --config FILE`` (every field optional in FILE)."""

    data: str = ""
    out: str = "build/train/predictor"
    width: str = "narrow"
    crop_size: int = 192  # the landmark crop's side (the teacher's input)
    batch_size: int = 16
    steps: int = 100_000
    lr: float = 1e-3
    weight_decay: float = 1e-4
    seed: int = 0
    device: str = "auto"
    mixed_precision: bool = True
    log_every: int = 10
    checkpoint_every: int = 1000
    resume: bool = True
    vertex_stride: int = 8  # every k-th head vertex enters the vertex loss
    num_workers: int = 0
    losses: PredictorLossWeights = field(default_factory=PredictorLossWeights)


ConfigT = TypeVar("ConfigT")


def from_mapping(cls: type[ConfigT], values: dict[str, Any]) -> ConfigT:
    """A dataclass from a plain mapping: unknown keys are an error, nested dataclasses and
    tuples are converted, missing keys keep their defaults."""
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ValueError(f"{cls.__name__}: unknown settings {unknown}; known: {sorted(fields)}")
    kwargs: dict[str, Any] = {}
    for name, value in values.items():
        default = getattr(cls(), name)
        if dataclasses.is_dataclass(default):
            kwargs[name] = from_mapping(type(default), value)
        elif isinstance(default, tuple):
            kwargs[name] = tuple(value)
        else:
            kwargs[name] = value
    return cls(**kwargs)


def load_config(cls: type[ConfigT], path: str | Path) -> ConfigT:
    """Reads a ``.toml`` or ``.json`` file into ``cls``."""
    path = Path(path)
    if path.suffix == ".toml":
        if tomllib is None:
            raise ValueError("TOML configs need Python 3.11 or newer; use a .json file")
        values = tomllib.loads(path.read_text())
    elif path.suffix == ".json":
        values = json.loads(path.read_text())
    else:
        raise ValueError(f"config must be a .toml or .json file, got {path}")
    return from_mapping(cls, values)


def as_dict(config: Any) -> dict[str, Any]:
    return dataclasses.asdict(config)

"""face_reenactment's work around the networks: read the options of a request, make the K target
parameter sets, and turn the K reenacted canvases into encoded images (optionally pasted back into
the original photo). :class:`Reenactment` runs one request with the two networks passed in; the
Triton model (model_repository/face_reenactment) passes BLS calls of mesh_predictor and
reenactor, :mod:`reenact.pipeline` passes the TorchScript modules themselves.

Decoding and face detection run in this process rather than through face_preprocess: Triton
2.51's BLS hands every callee error to the caller as INTERNAL, so a photo without a face must be
refused here to reach the client as INVALID_ARG.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from reenact import face_geometry
from reenact.emotions import EmotionCatalogue, load_catalogue
from reenact.errors import RequestError
from reenact.geometric import ReenactorRenderer
from reenact.morphable import EXPR_SLICE, ID_SLICE, N_EXPRESSION, ROT_SLICE, MorphableModel
from reenact.postprocess import PostprocessConfig, postprocess
from reenact.preprocess import (
    FacePreprocessor,
    PreprocessConfig,
    Preprocessed,
    face_index_option,
)
from reenact.reenactors import DEFAULT_MODE, get_mode
from reenact.templates import TemplateDatabase, facs_database

OUTPUT_FORMATS = ("jpeg", "png")


@dataclass(frozen=True)
class ReenactmentConfig:
    """Tunables of face_reenactment (``parameters`` in its config.pbtxt)."""

    default_emotions: str = ""  # comma-separated; "" = the catalogue's 15 defaults
    template_database: str = ""  # .npz path; "" = generated from the FACS catalogue
    neighbours: int = 5  # template rows averaged per emotion (nearest identities)
    max_targets: int = 32  # most images one request may ask for
    max_name_chars: int = 64  # longest EMOTIONS name read (the catalogue's longest has 21)
    max_intensity: float = 1.5
    # largest HEAD_POSE yaw, pitch, roll (degrees): beyond them the warp would have to show parts
    # of the head the photo does not have (at 45 degrees of yaw the face smears)
    max_head_pose_deg: tuple[float, ...] = (30.0, 20.0, 45.0)
    default_output_format: str = "jpeg"
    jpeg_quality: int = 92
    png_compression: int = 1
    paste_feather_px: int = 12  # soft edge of the pasted-back region
    paste_threshold: int = 3  # grey levels from which a canvas pixel counts as changed
    encode_threads: int = 2
    torch_threads: int = 2
    # geometric, neural or hybrid: what the reenactor model is and what is rendered for it
    # (reenact.reenactors); a learned mode needs its trained model in the repository
    reenactor_mode: str = DEFAULT_MODE

    def __post_init__(self) -> None:
        get_mode(self.reenactor_mode)  # ValueError naming the modes
        if len(self.max_head_pose_deg) != 3:
            raise ValueError("max_head_pose_deg must be 3 angles: yaw, pitch, roll")
        if self.default_output_format not in OUTPUT_FORMATS:
            raise ValueError(f"default_output_format must be one of {OUTPUT_FORMATS}")


@dataclass(frozen=True)
class ReenactOptions:
    """One request's validated options."""

    names: tuple[str, ...]  # one label per output image
    expressions: np.ndarray | None  # (K, 55) raw EXPRESSION rows, or None: look up the names
    intensity: float
    head_pose_deg: np.ndarray  # (3,) yaw, pitch, roll added to the source pose
    output_format: str
    paste_back: bool
    face_index: int | None = None  # which face, counted from the left; None: the largest


def _single_number(value: np.ndarray | None, name: str, default: float) -> float:
    if value is None:
        return default
    if value.size != 1:
        raise RequestError(f"{name} must hold one number, got shape {list(value.shape)}")
    number = float(value.reshape(-1)[0])
    if not math.isfinite(number):
        raise RequestError(f"{name} must be a finite number, got {number}")
    return number


def _single_flag(value: np.ndarray | None, name: str) -> bool:
    if value is None:
        return False
    if value.size != 1:
        raise RequestError(f"{name} must hold one boolean, got shape {list(value.shape)}")
    return bool(value.reshape(-1)[0])


def _decode_strings(value: np.ndarray, name: str) -> list[str]:
    try:
        return [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in value.reshape(-1)]
    except UnicodeDecodeError as exc:
        raise RequestError(f"{name} must be UTF-8 text") from exc


class OptionParser:
    """Validates the optional inputs of a request against the config and the catalogue."""

    def __init__(self, config: ReenactmentConfig, catalogue: EmotionCatalogue) -> None:
        self.config = config
        self.catalogue = catalogue
        names = [n.strip() for n in config.default_emotions.split(",") if n.strip()]
        self.default_names = tuple(catalogue.get(n).name for n in names) or catalogue.default

    def parse(
        self,
        emotions: np.ndarray | None = None,
        intensity: np.ndarray | None = None,
        head_pose: np.ndarray | None = None,
        expression: np.ndarray | None = None,
        output_format: np.ndarray | None = None,
        paste_back: np.ndarray | None = None,
        face_index: np.ndarray | None = None,
    ) -> ReenactOptions:
        """Raises RequestError, saying what is accepted, for anything out of contract."""
        if emotions is not None and expression is not None:
            raise RequestError("send EMOTIONS or EXPRESSION, not both")
        raw = None if expression is None else self._expression(expression)
        if raw is not None:
            names = tuple(f"expression_{k}" for k in range(len(raw)))
        elif emotions is not None:
            names = self._emotions(emotions)
        else:
            names = self.default_names
        level = _single_number(intensity, "INTENSITY", 1.0)
        if not 0.0 <= level <= self.config.max_intensity:
            raise RequestError(
                f"INTENSITY must be in [0, {self.config.max_intensity}], got {level}"
            )
        return ReenactOptions(
            names=names,
            expressions=raw,
            intensity=level,
            head_pose_deg=self._head_pose(head_pose),
            output_format=self._format(output_format),
            paste_back=_single_flag(paste_back, "PASTE_BACK"),
            face_index=face_index_option(face_index),
        )

    def _emotions(self, emotions: np.ndarray) -> tuple[str, ...]:
        """Checked in order of cost: the count before any name is decoded, each name's length
        before it is looked up (an unknown name is quoted back, so it must be short)."""
        if emotions.size == 0:
            raise RequestError(
                "EMOTIONS is empty: name at least one of " + ", ".join(self.catalogue.emotions)
            )
        if emotions.size > self.config.max_targets:
            raise RequestError(
                f"EMOTIONS names {emotions.size} emotions; the limit is {self.config.max_targets}"
            )
        requested = _decode_strings(emotions, "EMOTIONS")
        for position, name in enumerate(requested):
            if len(name) > self.config.max_name_chars:
                raise RequestError(
                    f"EMOTIONS name {position} is {len(name)} characters long; the limit is "
                    f"{self.config.max_name_chars} characters (the longest emotion name has "
                    f"{max(map(len, self.catalogue.emotions))})"
                )
        return tuple(self.catalogue.get(n).name for n in requested)

    def _expression(self, expression: np.ndarray) -> np.ndarray:
        value = np.asarray(expression, np.float32)
        if value.ndim == 1 and value.size == N_EXPRESSION:
            value = value[None]
        if value.ndim != 2 or value.shape[1] != N_EXPRESSION or value.shape[0] < 1:
            raise RequestError(
                f"EXPRESSION must be [K, {N_EXPRESSION}] blendshape weights (K >= 1), "
                f"got shape {list(expression.shape)}"
            )
        if value.shape[0] > self.config.max_targets:
            raise RequestError(
                f"EXPRESSION has {value.shape[0]} rows; the limit is {self.config.max_targets}"
            )
        if not np.isfinite(value).all() or value.min() < 0.0 or value.max() > 1.0:
            raise RequestError("EXPRESSION weights must be finite and in [0, 1]")
        return value

    def _head_pose(self, head_pose: np.ndarray | None) -> np.ndarray:
        if head_pose is None:
            return np.zeros(3, np.float32)
        pose = np.asarray(head_pose, np.float32).reshape(-1)
        if pose.size != 3:
            raise RequestError(
                f"HEAD_POSE must be 3 numbers (yaw, pitch, roll in degrees), got {pose.size}"
            )
        limits = np.asarray(self.config.max_head_pose_deg, np.float32)
        if not np.isfinite(pose).all() or (np.abs(pose) > limits).any():
            yaw, pitch, roll = self.config.max_head_pose_deg
            raise RequestError(
                f"HEAD_POSE angles must be finite and within ±{yaw:g} yaw, ±{pitch:g} pitch, "
                f"±{roll:g} roll degrees, got {pose.tolist()}: larger turns would show parts of "
                "the head the photo does not have"
            )
        return pose

    def _format(self, output_format: np.ndarray | None) -> str:
        if output_format is None:
            return self.config.default_output_format
        values = _decode_strings(output_format, "OUTPUT_FORMAT")
        fmt = values[0].strip().lower().replace("jpg", "jpeg") if len(values) == 1 else ""
        if fmt not in OUTPUT_FORMATS:
            got = (
                repr(values[0][: self.config.max_name_chars])
                if len(values) == 1
                else f"{len(values)} values"
            )
            raise RequestError(
                f"OUTPUT_FORMAT must be one of {', '.join(OUTPUT_FORMATS)}, got {got}"
            )
        return fmt


def load_templates(config: ReenactmentConfig, catalogue: EmotionCatalogue) -> TemplateDatabase:
    if config.template_database:
        return TemplateDatabase.load(Path(config.template_database))
    return facs_database(catalogue)


def target_params(
    source: np.ndarray,
    expressions: np.ndarray,
    intensity: float,
    head_pose_deg: np.ndarray,
    max_weight: float = 1.0,
) -> np.ndarray:
    """K target parameter sets: the source with its expression moved towards each of
    ``expressions`` (K, 55) by ``intensity`` (0: the source's own, 1: the expression itself, so
    a face that already shows part of it moves less) and its pose turned by ``head_pose_deg``
    (yaw, pitch, roll). Weights are clipped to [0, ``max_weight``]: the catalogue's calibrated
    emotions go above 1 (reenact.emotions). source: (162,). Returns (K, 162) float32."""
    targets = np.repeat(np.asarray(source, np.float32)[None], len(expressions), axis=0)
    own = targets[:, EXPR_SLICE]
    moved = own + intensity * (expressions - own)
    targets[:, EXPR_SLICE] = np.clip(moved, 0.0, max(max_weight, 1.0))
    yaw, pitch, roll = np.radians(head_pose_deg)
    targets[:, ROT_SLICE] += np.array([pitch, yaw, roll], np.float32)
    return targets


def identity_of(params: np.ndarray) -> np.ndarray:
    return np.asarray(params, np.float32)[ID_SLICE]


class ImageEncoder:
    """Encodes RGB images in parallel (OpenCV releases the GIL while compressing)."""

    def __init__(self, config: ReenactmentConfig) -> None:
        self.config = config
        self.pool = ThreadPoolExecutor(max(1, config.encode_threads))

    def encode(self, images: Sequence[np.ndarray], fmt: str) -> list[bytes]:
        """images: K arrays (H, W, 3) uint8 RGB → K encoded files."""
        if fmt == "png":
            ext, args = ".png", [cv2.IMWRITE_PNG_COMPRESSION, self.config.png_compression]
        else:
            ext, args = ".jpg", [cv2.IMWRITE_JPEG_QUALITY, self.config.jpeg_quality]

        def one(image: np.ndarray) -> bytes:
            ok, data = cv2.imencode(ext, cv2.cvtColor(image, cv2.COLOR_RGB2BGR), args)
            if not ok:
                raise RuntimeError(f"OpenCV could not encode a {fmt} image")
            return data.tobytes()

        return list(self.pool.map(one, images))


def paste_back(
    photo: np.ndarray,
    canvas: np.ndarray,
    reenacted: np.ndarray,
    image_to_canvas: np.ndarray,
    config: ReenactmentConfig,
) -> np.ndarray:
    """Put reenacted canvases back into the photo, changing only what the reenactor changed.

    photo: (H, W, 3) uint8; canvas: (h, w, 3) uint8 the source canvas; reenacted: (K, h, w, 3)
    uint8; image_to_canvas: (2, 3). Returns (K, H, W, 3) uint8.
    """
    height, width = photo.shape[:2]
    to_image = face_geometry.invert_affine(image_to_canvas)
    changed = np.abs(reenacted.astype(np.int16) - canvas.astype(np.int16)).max(axis=-1)
    feather = 2 * config.paste_feather_px + 1
    out = np.empty((len(reenacted), height, width, 3), np.uint8)
    for k, image in enumerate(reenacted):
        mask = (changed[k] > config.paste_threshold).astype(np.uint8)
        mask = cv2.dilate(mask, np.ones((feather, feather), np.uint8)).astype(np.float32)
        mask = cv2.GaussianBlur(mask, (feather, feather), 0)
        warp = dict(dsize=(width, height), flags=cv2.INTER_LINEAR, borderValue=0)
        alpha = cv2.warpAffine(mask, to_image, borderMode=cv2.BORDER_CONSTANT, **warp)[..., None]
        face = cv2.warpAffine(image, to_image, borderMode=cv2.BORDER_REPLICATE, **warp)
        out[k] = np.rint(photo + alpha * (face.astype(np.float32) - photo)).astype(np.uint8)
    return out


GREY_SPREAD_LEVELS = 4  # channel spread of a greyscale photo after JPEG's chroma rounding


def is_greyscale(image: np.ndarray) -> bool:
    """Whether a (H, W, 3) uint8 RGB image is grey: 99 % of its pixels have channels within
    GREY_SPREAD_LEVELS of each other."""
    spread = image.max(axis=-1).astype(np.int16) - image.min(axis=-1)
    return float(np.percentile(spread, 99)) <= GREY_SPREAD_LEVELS


def to_greyscale(images: np.ndarray) -> np.ndarray:
    """(..., 3) uint8 RGB → the same shape, each pixel its luma (ITU-R BT.601) in all channels."""
    luma = images.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    return np.repeat(np.rint(luma).clip(0, 255).astype(np.uint8)[..., None], 3, axis=-1)


PredictMesh = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray, float]]
"""landmark crop (1, 192, 192, 3) uint8 → crop params (162,), crop landmarks (468, 3), presence."""
Reenact = Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray], np.ndarray]
"""canvas, source render, target render, target params → (K, H, W, 3) uint8 (reenactor contract)."""


@dataclass(frozen=True)
class ReenactmentOutput:
    images: list[bytes]
    names: tuple[str, ...]
    target_params: np.ndarray  # (K, 162) float32, canvas pixels
    source_params: np.ndarray  # (162,) float32, canvas pixels
    face_box: np.ndarray  # (4,) float32


class Reenactment:
    """One request of face_reenactment, with the two networks passed in: served models through
    BLS inside Triton, or TorchScript modules in-process (tests, benchmarks)."""

    def __init__(
        self,
        config: ReenactmentConfig,
        model: MorphableModel,
        predict_mesh: PredictMesh,
        reenact: Reenact,
        preprocess_config: PreprocessConfig | None = None,
        postprocess_config: PostprocessConfig | None = None,
    ) -> None:
        catalogue = load_catalogue(model.expression_names)
        self.config = config
        self.options = OptionParser(config, catalogue)
        self.templates = load_templates(config, catalogue)
        self.preprocess = FacePreprocessor(preprocess_config)
        self.postprocess = postprocess_config or PostprocessConfig()
        self.renderer = ReenactorRenderer(model, contract=get_mode(config.reenactor_mode).contract)
        self.encoder = ImageEncoder(config)
        self.predict_mesh = predict_mesh
        self.reenact = reenact

    def source_params(self, pre: Preprocessed) -> np.ndarray:
        """The 3DMM parameters (162,) float32 of a preprocessed photo's face, canvas pixels.
        Raises RequestError when the mesh predictor finds no human face."""
        crop_params, crop_landmarks, presence = self.predict_mesh(pre.landmark_crop[None])
        return postprocess(
            crop_params,
            crop_landmarks,
            presence,
            pre.crop_to_image,
            pre.image_to_canvas,
            self.postprocess,
        ).source_params

    def __call__(self, data: bytes, options: ReenactOptions) -> ReenactmentOutput:
        """Raises RequestError for a photo or options the service cannot use."""
        pre = self.preprocess(data, options.face_index)
        source = self.source_params(pre)
        expressions = options.expressions
        if expressions is None:
            expressions = self.templates.lookup(
                identity_of(source), options.names, self.config.neighbours
            )
        targets = target_params(
            source,
            expressions,
            options.intensity,
            options.head_pose_deg,
            self.options.catalogue.max_weight,
        )
        source_render, target_render = self.renderer.render(source, targets, *pre.canvas.shape[:2])
        reenacted = self.reenact(pre.canvas, source_render, target_render, targets)
        if is_greyscale(pre.canvas):  # the painted mouth interior must not bring colour in
            reenacted = to_greyscale(reenacted)
        if options.paste_back:
            reenacted = paste_back(
                pre.image, pre.canvas, reenacted, pre.image_to_canvas, self.config
            )
        return ReenactmentOutput(
            images=self.encoder.encode(list(reenacted), options.output_format),
            names=options.names,
            target_params=targets,
            source_params=source,
            face_box=pre.face_box,
        )

"""The TFJS weight reader and face-api's expression network in PyTorch.

The behavioural checks use the real weights that ``python -m export.convert_face_api`` converts
into ``build/assets/face-api`` (a set-up step of ``make eval-emotions``).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import skimage.data
import torch

from export.convert_face_api import (
    PACKAGE_FILE,
    compare_with_tfjs,
    read_tfjs_weights,
    sample_faces,
    state_dict_from_tfjs,
)
from reenact.assets import build_dir
from reenact.emotion_classifier import (
    INPUT_SIZE,
    LABELS,
    MEAN_RGB,
    CropConfig,
    EmotionClassifier,
    FaceExpressionNet,
    crop_face,
    network_input,
    pad_to_square,
)
from reenact.image_codec import decode_image
from reenact.landmarks.detection import FaceDetector
from reenact.serving.health import probe_face_png
from tests.corpus import ASTRONAUT_FACE


def _write_manifest(folder: Path, groups: list[dict], shards: dict[str, bytes]) -> Path:
    for name, data in shards.items():
        (folder / name).write_bytes(data)
    manifest = folder / "manifest.json"
    manifest.write_text(json.dumps(groups))
    return manifest


def test_tfjs_reader_float32_and_uint8_quantized_across_shards(tmp_path):
    plain = np.array([[1.5, -2.25, 3.0], [0.0, 7.0, -0.5]], "<f4")
    stored = np.array([0, 1, 255, 128], np.uint8)  # dequantized: stored * 0.5 - 10
    counts = np.array([3, -4], "<i4")
    data = plain.tobytes() + stored.tobytes() + counts.tobytes()
    groups = [
        {
            "paths": ["w1.bin", "w2.bin"],  # the bytes split at an arbitrary place
            "weights": [
                {"name": "a/plain", "shape": [2, 3], "dtype": "float32"},
                {
                    "name": "a/quantized",
                    "shape": [2, 2],
                    "dtype": "float32",
                    "quantization": {"dtype": "uint8", "scale": 0.5, "min": -10.0},
                },
                {"name": "b/counts", "shape": [2], "dtype": "int32"},
            ],
        }
    ]
    manifest = _write_manifest(tmp_path, groups, {"w1.bin": data[:7], "w2.bin": data[7:]})
    tensors = read_tfjs_weights(manifest)
    assert list(tensors) == ["a/plain", "a/quantized", "b/counts"]
    np.testing.assert_array_equal(tensors["a/plain"], plain)
    assert tensors["a/quantized"].dtype == np.float32
    np.testing.assert_array_equal(tensors["a/quantized"], [[-10.0, -9.5], [117.5, 54.0]])
    np.testing.assert_array_equal(tensors["b/counts"], [3, -4])


def test_tfjs_reader_refuses_bytes_left_over(tmp_path):
    groups = [{"paths": ["w.bin"], "weights": [{"name": "x", "shape": [1], "dtype": "float32"}]}]
    manifest = _write_manifest(tmp_path, groups, {"w.bin": bytes(8)})
    with pytest.raises(ValueError, match="use 4 bytes of 8"):
        read_tfjs_weights(manifest)


def _face_api_like_tensors() -> dict[str, np.ndarray]:
    """Random tensors with face-api's names and TFJS layouts."""
    rng = np.random.default_rng(0)
    tensors: dict[str, np.ndarray] = {}
    channels = {"dense0": (3, 32), "dense1": (32, 64), "dense2": (64, 128), "dense3": (128, 256)}
    for block, (cin, cout) in channels.items():
        for layer in range(4):
            prefix, channels_in = f"{block}/conv{layer}", cin if layer == 0 else cout
            if block == "dense0" and layer == 0:
                tensors[f"{prefix}/filters"] = rng.normal(size=(3, 3, 3, 32)).astype(np.float32)
            else:
                shape = (3, 3, channels_in, 1)
                tensors[f"{prefix}/depthwise_filter"] = rng.normal(size=shape).astype(np.float32)
                shape = (1, 1, channels_in, cout)
                tensors[f"{prefix}/pointwise_filter"] = rng.normal(size=shape).astype(np.float32)
            tensors[f"{prefix}/bias"] = rng.normal(size=cout).astype(np.float32)
    tensors["fc/weights"] = rng.normal(size=(256, 7)).astype(np.float32)
    tensors["fc/bias"] = rng.normal(size=7).astype(np.float32)
    return tensors


def test_every_tensor_finds_its_place_with_the_tfjs_layout_transposed():
    tensors = _face_api_like_tensors()
    state = state_dict_from_tfjs(tensors)
    assert len(state) == len(tensors) == len(FaceExpressionNet().state_dict())
    # TFJS (kh, kw, in, out) → PyTorch (out, in, kh, kw); element [o, i, y, x] = tfjs[y, x, i, o]
    filters = tensors["dense0/conv0/filters"]
    assert state["dense0.conv0.conv.weight"][5, 2, 0, 1] == filters[0, 1, 2, 5]
    depthwise = tensors["dense2/conv3/depthwise_filter"]
    assert state["dense2.conv3.depthwise.weight"][17, 0, 2, 0] == depthwise[2, 0, 17, 0]
    pointwise = tensors["dense1/conv0/pointwise_filter"]
    assert state["dense1.conv0.pointwise.weight"][40, 9, 0, 0] == pointwise[0, 0, 9, 40]
    assert state["fc.weight"][6, 100] == tensors["fc/weights"][100, 6]


def test_a_missing_or_misshapen_tensor_is_refused():
    tensors = _face_api_like_tensors()
    del tensors["dense3/conv2/bias"]
    with pytest.raises(ValueError, match=r"dense3\.conv2\.bias"):
        state_dict_from_tfjs(tensors)
    tensors = _face_api_like_tensors()
    tensors["fc/bias"] = np.zeros(6, np.float32)
    with pytest.raises(ValueError, match="fc/bias"):
        state_dict_from_tfjs(tensors)


def test_network_shapes():
    network = FaceExpressionNet().eval()
    x = torch.zeros(2, 3, INPUT_SIZE, INPUT_SIZE)
    with torch.inference_mode():
        assert network.dense0(x).shape == (2, 32, 56, 56)
        assert network.features(x).shape == (2, 256)
        assert network(x).shape == (2, len(LABELS))


def test_same_padding_is_tensorflows_for_stride_two():
    """A 3x3 stride-2 'same' convolution of a 4x4 input reads rows/columns 0..2 first, with
    the only padding after the image (TensorFlow), not before it (PyTorch's padding=1)."""
    network = FaceExpressionNet()
    conv = network.dense0.conv0
    with torch.no_grad():
        conv.conv.weight.zero_()
        conv.conv.weight[0, 0] = 1.0  # output channel 0 sums the 3x3 window of input channel 0
        conv.bias.zero_()
    x = torch.arange(16, dtype=torch.float32).reshape(1, 1, 4, 4).repeat(1, 3, 1, 1)
    out = conv(x, 2)[0, 0]
    # window rows 0..2, columns 0..2 of [[0..3], [4..7], [8..11], ...]: 0+1+2+4+5+6+8+9+10
    assert out[0, 0] == 45.0
    # last window: rows 2..3, columns 2..3 plus a zero row and column: 10+11+14+15
    assert out[1, 1] == 50.0


def test_input_is_padded_centred_and_normalised():
    face = np.full((9, 6, 3), 200, np.uint8)
    square = pad_to_square(face.astype(np.float32))
    assert square.shape == (9, 9, 3)
    # 3 columns of zeros: the rounded half (2) after the face, the rest (1) before it
    assert (square[:, :1] == 0).all() and (square[:, 7:] == 0).all()
    assert (square[:, 1:7] == 200).all()
    x = network_input([np.full((112, 112, 3), 255, np.uint8)])
    assert x.shape == (1, 3, INPUT_SIZE, INPUT_SIZE)
    np.testing.assert_allclose(x[0, :, 0, 0].numpy(), (255 - np.array(MEAN_RGB)) / 255, rtol=1e-6)


def test_crop_grows_the_box_by_a_fifth_and_clips_to_the_image():
    image = np.zeros((100, 200, 3), np.uint8)
    assert crop_face(image, (50, 20, 100, 70)).shape == (60, 60, 3)  # 50 px + 2 x 5 px
    assert crop_face(image, (0, 0, 50, 50), CropConfig(padding=0.2)).shape == (55, 55, 3)


@pytest.fixture(scope="module")
def classifier() -> EmotionClassifier:
    return EmotionClassifier.load()


def test_the_smiling_astronaut_reads_happy(classifier):
    probabilities = classifier.classify(skimage.data.astronaut(), ASTRONAUT_FACE)
    assert probabilities.shape == (7,)
    assert abs(float(probabilities.sum()) - 1.0) < 1e-5
    assert LABELS[int(np.argmax(probabilities))] == "happy"
    assert probabilities[LABELS.index("happy")] > 0.9


def test_the_painted_neutral_head_reads_neutral(classifier):
    """The ICT mean head painted with brows and lips, no expression (the health probe's face)."""
    head = decode_image(probe_face_png())
    faces = FaceDetector.from_assets()(head)
    assert len(faces) == 1
    probabilities = classifier.classify(head, faces[0].box)
    assert LABELS[int(np.argmax(probabilities))] == "neutral"
    assert probabilities[LABELS.index("neutral")] > 0.8


# PyTorch vs face-api's own network on TFJS's CPU backend (float32 both, same weights): they
# differ by float32 rounding in another summation order through 17 convolutions. Measured: at
# most 1.1e-5 on logits of magnitude up to 18.6. Allowed 1e-3, a ~100x margin; one convention
# wrong (padding before the image for stride 2, as PyTorch pads) moves the logits by 2.7 to 13.
TFJS_LOGIT_ATOL = 1e-3


def test_logits_match_face_api_on_its_own_tfjs_runtime(classifier):
    """Needs Node.js and the npm package that set-up fetched into build/downloads."""
    archive = build_dir() / "downloads" / PACKAGE_FILE
    assert archive.is_file(), f"{archive} is missing: run python -m export.convert_face_api"
    differences = compare_with_tfjs(archive, classifier, sample_faces())
    assert differences.shape == (6,)
    assert differences.max() < TFJS_LOGIT_ATOL

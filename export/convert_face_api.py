"""Convert face-api's facial-expression network (TFJS weights) into a PyTorch state dict.

Set-up step for ``make eval-emotions`` (never run at serving time):

    python -m export.convert_face_api [--package TGZ] [--out DIR] [--compare-tfjs]

Without ``--package`` the npm package ``@vladmandic/face-api`` (MIT) is looked for in
``build/downloads`` and, if missing, fetched there with ``npm pack`` (the npm registry, no
install, no scripts run). The archive and the three files used from it (the weights manifest, the
weights shard and the LICENSE) are checked against recorded SHA-256 digests. The weights are read
by this project's own TFJS reader (:func:`read_tfjs_weights`): a JSON manifest lists each tensor's
name, shape, dtype and optional quantization; the tensors are concatenated little-endian in the
``.bin`` shards, in manifest order. The result, ``face_expression.pt`` (a plain state dict of
:class:`reenact.emotion_classifier.FaceExpressionNet`) is written with the LICENSE beside it into
``build/assets/face-api`` (:func:`reenact.emotion_classifier.face_api_dir`). Running it again with
the same output changes nothing.

``--compare-tfjs`` runs face-api's own network on its own bundled TensorFlow.js (CPU backend,
under Node.js) on real face crops and prints how far the PyTorch logits are from it
(:func:`compare_with_tfjs`).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import numpy as np
import torch

from reenact.assets import build_dir
from reenact.emotion_classifier import (
    FACE_API_PACKAGE,
    FACE_API_VERSION,
    WEIGHTS_FILE,
    EmotionClassifier,
    FaceExpressionNet,
    face_api_dir,
    network_input,
)

PACKAGE_FILE = f"vladmandic-face-api-{FACE_API_VERSION}.tgz"
PACKAGE_SHA256 = "0d77fffeef362ef9c0939cf6c567f3a2e8e177f114fa257a3270cbd2e509b031"
MANIFEST_MEMBER = "package/model/face_expression_model-weights_manifest.json"
# archive member → SHA-256 of its bytes
MEMBERS = {
    MANIFEST_MEMBER: "5b349c17c7836da506e03422cd6461c74085d8bb2713ad4114647dc5d28174c8",
    "package/model/face_expression_model.bin": (
        "9a9840f2cf1f4c7eab95f197512569345c00d2426754d4608b92af30e0300f3d"
    ),
    "package/LICENSE": "9a3442b79acaf4fbc7c2e07b7e2d8f84af9bb3871bf08a69d80304ab00640e9a",
}

# TFJS dtype name → numpy little-endian dtype (of the stored values)
_STORED_DTYPES = {
    "float32": np.dtype("<f4"),
    "int32": np.dtype("<i4"),
    "uint8": np.dtype("u1"),
    "uint16": np.dtype("<u2"),
    "float16": np.dtype("<f2"),
    "bool": np.dtype("u1"),
}


def read_tfjs_weights(manifest: Path) -> dict[str, np.ndarray]:
    """Every tensor of a TFJS weights manifest, by name, in manifest order.

    ``manifest``: a JSON list of groups ``{"paths": [shard, ...], "weights": [spec, ...]}``; the
    shards (relative to the manifest's folder) are concatenated, and each spec (``name``,
    ``shape``, ``dtype``, optional ``quantization`` ``{"dtype", "scale", "min"}`` or
    ``{"dtype": "float16"}``) takes its bytes in order. A uint8/uint16-quantized tensor is
    ``stored * scale + min`` as float32 (TFJS's ``decodeWeights``). Raises ValueError when a name
    repeats or a group's bytes do not match its specs exactly.
    """
    groups = json.loads(manifest.read_text())
    tensors: dict[str, np.ndarray] = {}
    for group in groups:
        data = b"".join((manifest.parent / path).read_bytes() for path in group["paths"])
        offset = 0
        for spec in group["weights"]:
            if spec["name"] in tensors:
                raise ValueError(f"{manifest}: tensor {spec['name']!r} appears twice")
            tensor, size = _decode_tensor(spec, data, offset)
            tensors[spec["name"]] = tensor
            offset += size
        if offset != len(data):
            raise ValueError(
                f"{manifest}: the specs of shards {group['paths']} use {offset} bytes "
                f"of {len(data)}"
            )
    return tensors


def _decode_tensor(spec: dict, data: bytes, offset: int) -> tuple[np.ndarray, int]:
    """One spec's tensor read from ``data`` at ``offset``; (tensor, bytes used)."""
    shape = tuple(int(d) for d in spec["shape"])
    count = int(np.prod(shape, dtype=np.int64))
    quantization = spec.get("quantization")
    stored = _STORED_DTYPES[quantization["dtype"] if quantization else spec["dtype"]]
    size = count * stored.itemsize
    if offset + size > len(data):
        raise ValueError(f"tensor {spec['name']!r} runs past the end of its shards")
    values = np.frombuffer(data, dtype=stored, count=count, offset=offset)
    if quantization and quantization["dtype"] in ("uint8", "uint16"):
        scale, minimum = float(quantization["scale"]), float(quantization["min"])
        # in double precision, rounded once to float32, as TFJS's JavaScript numbers do
        values = values.astype(np.float64) * scale + minimum
    values = values.astype(np.dtype(spec["dtype"]) if spec["dtype"] != "bool" else np.bool_)
    return values.reshape(shape), size


def _conv_weight(tfjs: np.ndarray, kind: str) -> torch.Tensor:
    """A TFJS filter as a PyTorch conv weight.

    ``filters``: (kh, kw, in, out) → (out, in, kh, kw); ``depthwise_filter``: (kh, kw, in, 1) →
    (in, 1, kh, kw); ``pointwise_filter``: (1, 1, in, out) → (out, in, 1, 1).
    """
    order = (2, 3, 0, 1) if kind == "depthwise_filter" else (3, 2, 0, 1)
    return torch.from_numpy(np.ascontiguousarray(tfjs.transpose(order)))


def state_dict_from_tfjs(tensors: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """The :class:`FaceExpressionNet` state dict from face-api's tensors.

    Names map one to one (``dense0/conv1/depthwise_filter`` → ``dense0.conv1.depthwise.weight``,
    ``fc/weights`` (256, 7) → ``fc.weight`` (7, 256)). Raises ValueError unless every tensor is
    used exactly once and every shape matches the network's.
    """
    expected = FaceExpressionNet().state_dict()
    state: dict[str, torch.Tensor] = {}
    for name, value in tensors.items():
        block, layer, kind = [*name.split("/"), ""][:3]
        if block == "fc":
            key = f"fc.{'weight' if layer == 'weights' else 'bias'}"
            tensor = torch.from_numpy(np.ascontiguousarray(value.T if value.ndim == 2 else value))
        elif kind == "bias":
            key, tensor = f"{block}.{layer}.bias", torch.from_numpy(value.copy())
        else:
            part = {"filters": "conv", "depthwise_filter": "depthwise"}.get(kind, "pointwise")
            key, tensor = f"{block}.{layer}.{part}.weight", _conv_weight(value, kind)
        if key not in expected or key in state:
            raise ValueError(f"tensor {name!r} has no (or a second) place in the network: {key}")
        if tuple(tensor.shape) != tuple(expected[key].shape):
            raise ValueError(
                f"{name}: shape {tuple(tensor.shape)}, network wants {key} "
                f"{tuple(expected[key].shape)}"
            )
        state[key] = tensor.to(torch.float32)
    missing = sorted(set(expected) - set(state))
    if missing:
        raise ValueError(f"the manifest lacks {missing}")
    return state


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def fetch_package(folder: Path) -> Path:
    """``npm pack`` the pinned face-api package into ``folder`` unless there; its checked path."""
    archive = folder / PACKAGE_FILE
    if not archive.is_file():
        if shutil.which("npm") is None:
            raise RuntimeError(
                f"npm is needed once to fetch {FACE_API_PACKAGE}@{FACE_API_VERSION} (apt-get "
                f"install npm), or put {PACKAGE_FILE} into {folder}"
            )
        folder.mkdir(parents=True, exist_ok=True)
        print(f"face-api: npm pack {FACE_API_PACKAGE}@{FACE_API_VERSION} into {folder}")
        command = ["npm", "pack", "--ignore-scripts", f"{FACE_API_PACKAGE}@{FACE_API_VERSION}"]
        subprocess.run(command, cwd=folder, check=True, stdout=subprocess.DEVNULL)
    if _sha256(archive.read_bytes()) != PACKAGE_SHA256:
        raise RuntimeError(f"{archive} does not match its recorded SHA-256")
    return archive


def extract_members(archive: Path, folder: Path) -> Path:
    """The checked manifest, shard and LICENSE of ``archive`` written into ``folder``;
    the manifest's path."""
    folder.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive) as package:
        for member, digest in MEMBERS.items():
            source = package.extractfile(member)
            data = source.read() if source is not None else b""
            if _sha256(data) != digest:
                raise RuntimeError(f"{member} in {archive} does not match its recorded SHA-256")
            (folder / Path(member).name).write_bytes(data)
    return folder / Path(MANIFEST_MEMBER).name


def convert(archive: Path, out_dir: Path) -> Path:
    """Extract, read and convert; writes ``face_expression.pt`` + LICENSE; its path."""
    manifest = extract_members(archive, out_dir / "tfjs")
    state = state_dict_from_tfjs(read_tfjs_weights(manifest))
    target = out_dir / WEIGHTS_FILE
    buffer = io.BytesIO()
    torch.save(state, buffer)
    if not target.is_file() or target.read_bytes() != buffer.getvalue():
        target.write_bytes(buffer.getvalue())
    shutil.copyfile(manifest.parent / "LICENSE", out_dir / "LICENSE")
    return target


BUNDLE_MEMBER = "package/dist/face-api.esm.js"  # face-api with TensorFlow.js 4.22 built in
# The bundle takes Node's `util` from a browser stub; the one place that needs it gets the real one.
NODE_UTIL_STUB = "this.util=AR(),"
NODE_UTIL_REAL = 'this.util=process.getBuiltinModule("util"),'
NODE_SCRIPT = """
import * as faceapi from './face-api.mjs';
import fs from 'fs';
const tf = faceapi.tf;
await tf.setBackend('cpu');
const manifest = JSON.parse(fs.readFileSync('face_expression_model-weights_manifest.json'));
const bin = fs.readFileSync('face_expression_model.bin');
const buffer = bin.buffer.slice(bin.byteOffset, bin.byteOffset + bin.byteLength);
faceapi.nets.faceExpressionNet.loadFromWeightMap(tf.io.decodeWeights(buffer, manifest[0].weights));
const results = [];
for (const face of JSON.parse(fs.readFileSync('faces.json'))) {
  const pixels = new Uint8Array(fs.readFileSync(face.file));
  const image = tf.tensor3d(pixels, [face.height, face.width, 3], 'int32');
  const input = await faceapi.toNetInput(image);
  results.push(Array.from(faceapi.nets.faceExpressionNet.runNet(input).dataSync()));
}
fs.writeFileSync('logits.json', JSON.stringify(results));
"""


def tfjs_logits(archive: Path, faces: list[np.ndarray]) -> np.ndarray:
    """(N, 7) logits of face-api's own FaceExpressionNet (TFJS CPU backend, Node.js) on face
    crops, each (H, W, 3) uint8 RGB, through face-api's own padding and resizing."""
    if shutil.which("node") is None:
        raise RuntimeError("Node.js (node) is needed to run face-api's own network")
    with tempfile.TemporaryDirectory() as folder_name:
        folder = Path(folder_name)
        extract_members(archive, folder)
        with tarfile.open(archive) as package:
            source = package.extractfile(BUNDLE_MEMBER)
            bundle = source.read().decode() if source is not None else ""
        if bundle.count(NODE_UTIL_STUB) != 1:
            raise RuntimeError(f"{BUNDLE_MEMBER} is not the bundle this comparison knows")
        (folder / "face-api.mjs").write_text(bundle.replace(NODE_UTIL_STUB, NODE_UTIL_REAL))
        (folder / "compare.mjs").write_text(NODE_SCRIPT)
        cases = []
        for index, face in enumerate(faces):
            (folder / f"face{index}.rgb").write_bytes(np.ascontiguousarray(face).tobytes())
            cases.append({"file": f"face{index}.rgb", "height": face.shape[0],
                          "width": face.shape[1]})  # fmt: skip
        (folder / "faces.json").write_text(json.dumps(cases))
        subprocess.run(["node", "compare.mjs"], cwd=folder, check=True, capture_output=True)
        return np.array(json.loads((folder / "logits.json").read_text()), np.float32)


def compare_with_tfjs(archive: Path, classifier: EmotionClassifier, faces: list[np.ndarray]):
    """(N,) float32 largest |PyTorch - TFJS| logit difference of each face crop."""
    with torch.inference_mode():
        ours = classifier.network(network_input(faces)).numpy()
    return np.abs(ours - tfjs_logits(archive, faces)).max(axis=1)


def sample_faces() -> list[np.ndarray]:
    """Real face crops of several shapes (square, wide, tall): the astronaut and group faces."""
    import skimage.data

    from clients.sample_photos import group

    astronaut, photo = skimage.data.astronaut(), group()
    return [
        astronaut[73:188, 168:283],
        astronaut[50:220, 150:320],
        astronaut[60:240, 170:290],
        photo[279:400, 56:177],
        photo[155:278, 251:373],
        photo[272:424, 439:590],
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--package", type=Path, help=f"the {PACKAGE_FILE} archive")
    parser.add_argument("--out", type=Path, default=face_api_dir(), help="output folder")
    parser.add_argument(
        "--compare-tfjs", action="store_true", help="compare with face-api's own TFJS network"
    )
    args = parser.parse_args(argv)
    archive = args.package or fetch_package(build_dir() / "downloads")
    weights = convert(archive, args.out)
    print(f"wrote {weights}")
    if args.compare_tfjs:
        differences = compare_with_tfjs(archive, EmotionClassifier.load(weights), sample_faces())
        print(f"largest logit difference from face-api on TFJS: {differences.max():.2e} "
              f"over {len(differences)} face crops")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())

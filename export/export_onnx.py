"""ONNX export beside TorchScript, and a production repository variant on ONNX Runtime.

    python -m export.export_onnx [--out build/onnx]
    python -m export.export_onnx --repository build/model_repository_onnx

What ONNX can express (opset 17: every operator it needs, and ONNX Runtime 1.19, the one Triton
24.10's onnxruntime backend is built on, runs it):

- the mesh predictor's landmark network (:class:`reenact.mesh_predictor.LandmarkNetwork`:
  FaceMesh, uint8 crop in, landmarks and presence out), batch dimension dynamic;
- not the mesh predictor's fit (:class:`reenact.mesh_predictor.LandmarkFit`): it needs
  ``linalg_svd`` (the 3 x 3 Umeyama rotation), ``linalg_cholesky_ex`` and ``cholesky_solve``
  (the float64 normal equations), for which ONNX has no operators;
- the reenactor (``reenactor.onnx``), through its full-frame path
  (``GeometricReenactor(full_frame=True)``): the served, scripted path cuts its work to the
  moving region, a box read off the data (``nonzero`` → Python ints → slices and early
  returns), takes the teeth colour as the median of a data-sized pixel selection and writes
  into slices in place, none of which a graph of static shapes holds. The full-frame path
  computes the same result on the whole canvas: the boxes become masks, the medians sorts of
  masked values read at the lower median's index. It is traced with the production canvas and
  render sizes fixed and the number of targets K dynamic; its output equals the TorchScript
  model's (on the CPU, ONNX Runtime's resampling kernels round differently in the last float
  bit: one grey level at a few values in 10^5, tests/unit/test_onnx_export.py).

The repository variant is a copy of ``model_repository/`` (with its exported ``model.pt``) where
``mesh_predictor`` is an ensemble with the same tensors: ``mesh_landmarks`` (this ONNX model on
the ``onnxruntime_onnx`` platform) then ``landmark_fit`` (the fit, TorchScript), and
``reenactor`` is the ONNX reenactor on ``onnxruntime_onnx`` with the production tensors (the
TorchScript ``NAME__i`` names, which ``face_reenactment`` calls it by). Every other model is
copied unchanged. The landmark network's config shows the TensorRT execution provider as a
commented option.
"""

from __future__ import annotations

import argparse
import shutil
import warnings
from pathlib import Path

import torch
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

from reenact import mesh_predictor
from reenact.assets import build_dir
from reenact.reenactor import GeometricReenactor
from reenact.reenactors.contract import GEOMETRIC, INPUT_NAMES, OUTPUT_NAME
from reenact.serving.local_repo import PRODUCTION_REPOSITORY, read_config

OPSET = 17  # grid_sample needs 16+; ONNX Runtime 1.19 (Triton 24.10) runs up to 21
ONNX_FILE = "model.onnx"
LANDMARKS_MODEL = "mesh_landmarks"  # the ONNX landmark network
FIT_MODEL = "landmark_fit"  # the fit, TorchScript
MESH_MODEL = "mesh_predictor"  # the ensemble of both, the production model's tensors
CROP_INPUT = "LANDMARK_CROP"
LANDMARKS_OUTPUT = "CROP_LANDMARKS"
PRESENCE_OUTPUT = "FACE_PRESENCE"
PARAMS_OUTPUT = "CROP_PARAMS"
BATCH_AXIS = "batch"
REENACTOR_MODEL = "reenactor"
REENACTOR_FILE = "reenactor.onnx"  # beside the landmark network's folder in --out
TARGETS_AXIS = "targets"
REENACTOR_INPUTS = INPUT_NAMES
REENACTOR_OUTPUT = OUTPUT_NAME
TENSORRT_OPTION = (
    "# TensorRT execution provider, optional: uncomment to let ONNX Runtime hand the graph to\n"
    "# TensorRT (engines are built when the model loads, which then takes minutes).\n"
    '# optimization { execution_accelerators { gpu_execution_accelerator : [ { name : "tensorrt" }'
    " ] } }\n"
)


def export_landmark_network(path: Path, network: torch.nn.Module | None = None) -> Path:
    """Write the landmark network as ONNX: LANDMARK_CROP (B, 192, 192, 3) uint8 →
    CROP_LANDMARKS (B, 468, 3), FACE_PRESENCE (B, 1) float32, B dynamic."""
    network = network or mesh_predictor.build().network
    crop = torch.zeros(1, mesh_predictor.CROP_SIZE, mesh_predictor.CROP_SIZE, 3, dtype=torch.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    names = [CROP_INPUT, LANDMARKS_OUTPUT, PRESENCE_OUTPUT]
    with warnings.catch_warnings():
        # the TorchScript-based exporter is deprecated, and notes a Slice it cannot fold
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", UserWarning)
        torch.onnx.export(
            network.eval(),
            (crop,),
            str(path),
            dynamo=False,
            opset_version=OPSET,
            input_names=names[:1],
            output_names=names[1:],
            dynamic_axes={name: {0: BATCH_AXIS} for name in names},
        )
    return path


def export_reenactor(path: Path, reenactor: GeometricReenactor | None = None) -> Path:
    """Write the reenactor's full-frame path as ONNX, with the production tensors:
    SOURCE_CANVAS__0 (H, W, 3) uint8, SOURCE_RENDER__1 (h, w, C) float32, TARGET_RENDER__2
    (K, h, w, C) float32, TARGET_PARAMS__3 (K, 162) float32 → REENACTED__0 (K, H, W, 3) uint8;
    H, W, h, w, C those of the geometric render contract (reenact.reenactors.contract), K
    dynamic."""
    reenactor = reenactor or GeometricReenactor(full_frame=True)
    if not reenactor.full_frame:
        raise ValueError("only the full-frame path of the reenactor can be exported to ONNX")
    dims = GEOMETRIC.tensor_dims()
    examples = []  # zeros of the contract's shapes, K = 2: the path has no branch on the data
    for name in REENACTOR_INPUTS:
        dtype = torch.uint8 if name == REENACTOR_INPUTS[0] else torch.float32
        examples.append(torch.zeros([2 if d == -1 else d for d in dims[name]], dtype=dtype))
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        # the deprecated TorchScript-based exporter, and the tracer's notes on the Python ints
        # it keeps (canvas and render sizes, fixed by the config)
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", UserWarning)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        torch.onnx.export(
            reenactor.eval(),
            tuple(examples),
            str(path),
            dynamo=False,
            opset_version=OPSET,
            input_names=list(REENACTOR_INPUTS),
            output_names=[REENACTOR_OUTPUT],
            dynamic_axes={
                name: {0: TARGETS_AXIS}
                for name in (REENACTOR_INPUTS[2], REENACTOR_INPUTS[3], REENACTOR_OUTPUT)
            },
        )
    return path


def _input(name: str, data_type: int, dims: list[int]) -> model_config_pb2.ModelInput:
    return model_config_pb2.ModelInput(name=name, data_type=data_type, dims=dims)


def _output(name: str, data_type: int, dims: list[int]) -> model_config_pb2.ModelOutput:
    return model_config_pb2.ModelOutput(name=name, data_type=data_type, dims=dims)


def _write_config(model_dir: Path, config: model_config_pb2.ModelConfig, header: str) -> None:
    model_dir.mkdir(parents=True, exist_ok=True)
    (model_dir / "config.pbtxt").write_text(header + text_format.MessageToString(config))


def _landmarks_config(mesh: model_config_pb2.ModelConfig) -> model_config_pb2.ModelConfig:
    """The ONNX landmark network's config: batching and instances as the production model."""
    by_name = {t.name.split("__")[0]: t for t in [*mesh.input, *mesh.output]}
    config = model_config_pb2.ModelConfig(
        name=LANDMARKS_MODEL, platform="onnxruntime_onnx", max_batch_size=mesh.max_batch_size
    )
    crop = by_name[CROP_INPUT]
    config.input.append(_input(CROP_INPUT, crop.data_type, crop.dims))
    for name in (LANDMARKS_OUTPUT, PRESENCE_OUTPUT):
        config.output.append(_output(name, by_name[name].data_type, by_name[name].dims))
    config.dynamic_batching.CopyFrom(mesh.dynamic_batching)
    config.instance_group.extend(mesh.instance_group)
    return config


def _fit_config(mesh: model_config_pb2.ModelConfig) -> model_config_pb2.ModelConfig:
    """The TorchScript fit's config: CROP_LANDMARKS__0 → CROP_PARAMS__0."""
    by_name = {t.name.split("__")[0]: t for t in [*mesh.input, *mesh.output]}
    config = model_config_pb2.ModelConfig(
        name=FIT_MODEL, platform=mesh.platform, max_batch_size=mesh.max_batch_size
    )
    landmarks, params = by_name[LANDMARKS_OUTPUT], by_name[PARAMS_OUTPUT]
    config.input.append(_input(f"{LANDMARKS_OUTPUT}__0", landmarks.data_type, landmarks.dims))
    config.output.append(_output(f"{PARAMS_OUTPUT}__0", params.data_type, params.dims))
    config.dynamic_batching.CopyFrom(mesh.dynamic_batching)
    config.instance_group.extend(mesh.instance_group)
    for key, value in mesh.parameters.items():
        config.parameters[key].CopyFrom(value)
    return config


def _ensemble_config(mesh: model_config_pb2.ModelConfig) -> model_config_pb2.ModelConfig:
    """``mesh_predictor`` as an ensemble with the production model's tensor names."""
    config = model_config_pb2.ModelConfig(
        name=MESH_MODEL, platform="ensemble", max_batch_size=mesh.max_batch_size
    )
    config.input.extend(mesh.input)
    config.output.extend(mesh.output)
    production = {t.name.split("__")[0]: t.name for t in [*mesh.input, *mesh.output]}
    network = config.ensemble_scheduling.step.add(model_name=LANDMARKS_MODEL, model_version=-1)
    network.input_map[CROP_INPUT] = production[CROP_INPUT]
    for name in (LANDMARKS_OUTPUT, PRESENCE_OUTPUT):
        network.output_map[name] = production[name]
    fit = config.ensemble_scheduling.step.add(model_name=FIT_MODEL, model_version=-1)
    fit.input_map[f"{LANDMARKS_OUTPUT}__0"] = production[LANDMARKS_OUTPUT]
    fit.output_map[f"{PARAMS_OUTPUT}__0"] = production[PARAMS_OUTPUT]
    return config


def _reenactor_config(production: model_config_pb2.ModelConfig) -> model_config_pb2.ModelConfig:
    """The ONNX reenactor's config: the production tensors and instances on ONNX Runtime (the
    PyTorch backend's parameters dropped), with the geometric contract's fixed channel count."""
    config = model_config_pb2.ModelConfig()
    config.CopyFrom(production)
    config.platform = "onnxruntime_onnx"
    config.ClearField("parameters")
    dims = GEOMETRIC.tensor_dims()  # the ONNX graph is the geometric one: its channel count
    for tensor in [*config.input, *config.output]:
        del tensor.dims[:]
        tensor.dims.extend(dims[tensor.name])
    return config


def write_repository(out: Path, source: Path = PRODUCTION_REPOSITORY) -> Path:
    """The ONNX variant of the production repository ``source`` (its model.pt files exported)
    in ``out``, rebuilt from scratch; returns ``out``."""
    if out.exists():
        shutil.rmtree(out)
    shutil.copytree(source, out, ignore=shutil.ignore_patterns("__pycache__"))
    mesh = read_config(source / MESH_MODEL)
    shutil.rmtree(out / MESH_MODEL)
    predictor = mesh_predictor.build()
    header = "# Generated by export/export_onnx.py from model_repository/mesh_predictor.\n"
    _write_config(
        out / MESH_MODEL,
        _ensemble_config(mesh),
        header + "# The mesh predictor: ONNX landmark network, then the TorchScript fit.\n",
    )
    (out / MESH_MODEL / "1").mkdir()
    _write_config(out / LANDMARKS_MODEL, _landmarks_config(mesh), header + TENSORRT_OPTION)
    export_landmark_network(out / LANDMARKS_MODEL / "1" / ONNX_FILE, predictor.network)
    _write_config(out / FIT_MODEL, _fit_config(mesh), header)
    (out / FIT_MODEL / "1").mkdir()
    torch.jit.script(predictor.fit).save(str(out / FIT_MODEL / "1" / "model.pt"))
    shutil.rmtree(out / REENACTOR_MODEL)
    _write_config(
        out / REENACTOR_MODEL,
        _reenactor_config(read_config(source / REENACTOR_MODEL)),
        "# Generated by export/export_onnx.py from model_repository/reenactor: the reenactor's\n"
        "# full-frame path (reenact/reenactor.py) on ONNX Runtime, K (the targets) dynamic.\n",
    )
    export_reenactor(out / REENACTOR_MODEL / "1" / ONNX_FILE)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=build_dir() / "onnx", help="ONNX files")
    parser.add_argument("--repository", type=Path, help="write the ONNX repository variant here")
    args = parser.parse_args(argv)
    if args.repository:
        write_repository(args.repository)
        print(f"wrote {args.repository}")
        return 0
    for path in (
        export_landmark_network(args.out / LANDMARKS_MODEL / ONNX_FILE),
        export_reenactor(args.out / REENACTOR_FILE),
    ):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

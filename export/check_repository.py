"""Check that each exported model of a repository matches its config.pbtxt.

    python -m export.check_repository [REPOSITORY]   # default model_repository/

- ``pytorch_libtorch``: the module's forward takes as many tensors as the config has inputs,
  named ``NAME__0``, ``NAME__1``, ... in that order (the PyTorch backend passes them by
  position), and called on zeros of the config's shapes (a batch of 2 in front when
  ``max_batch_size`` > 0, 2 for each -1) it returns the config's outputs, in their ``__i``
  order, with their dtypes and dims (the batch of 2 in front when batching);
- ``onnxruntime_onnx``: the graph's inputs and outputs are the config's by name, dtype and dims
  (a dynamic first axis for the batch when batching, dynamic axes where the config has -1),
  and ONNX Runtime (CPU) runs it on zeros of the config's shapes (2 for each -1), returning
  outputs of the config's dims with the dynamic axes as they went in.

Exit status 1 with one line per mismatch.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import torch
from tritonclient.grpc import model_config_pb2

from reenact.reenactors import get_mode, read_model_mode
from reenact.serving.local_repo import PRODUCTION_REPOSITORY, model_names, read_config

REENACTOR_MODEL = "reenactor"  # its channel count is its mode's (reenact.reenactors.contract)
TRY_SIZE = 2  # the batch, and each -1 dimension, of the TorchScript trial call
NUMPY_DTYPES = {
    "TYPE_BOOL": "bool",
    "TYPE_UINT8": "uint8",
    "TYPE_INT32": "int32",
    "TYPE_INT64": "int64",
    "TYPE_FP16": "float16",
    "TYPE_FP32": "float32",
    "TYPE_FP64": "float64",
}
TORCH_DTYPES = {
    "TYPE_BOOL": torch.bool,
    "TYPE_UINT8": torch.uint8,
    "TYPE_INT32": torch.int32,
    "TYPE_INT64": torch.int64,
    "TYPE_FP16": torch.float16,
    "TYPE_FP32": torch.float32,
    "TYPE_FP64": torch.float64,
}
ONNX_TYPES = {  # onnx.TensorProto element type names
    "BOOL": "TYPE_BOOL",
    "UINT8": "TYPE_UINT8",
    "INT32": "TYPE_INT32",
    "INT64": "TYPE_INT64",
    "FLOAT16": "TYPE_FP16",
    "FLOAT": "TYPE_FP32",
    "DOUBLE": "TYPE_FP64",
}
INDEXED = re.compile(r"^(?P<stem>.+)__(?P<index>\d+)$")


def _type_name(data_type: int) -> str:
    return model_config_pb2.DataType.Name(data_type)


def _full_dims(config: model_config_pb2.ModelConfig, dims: list[int]) -> list[int]:
    """The tensor's dims with the batch axis (-1) in front when the model batches."""
    return ([-1] if config.max_batch_size > 0 else []) + list(dims)


def _dims_match(expected: list[int], got: list[int]) -> bool:
    return len(expected) == len(got) and all(
        e in (-1, g) for e, g in zip(expected, got, strict=False)
    )


def _index_order(kind: str, tensors: list) -> list[str]:
    """Mismatches of the ``NAME__i`` naming: i must count 0, 1, ... in config order."""
    problems = []
    for position, tensor in enumerate(tensors):
        match = INDEXED.match(tensor.name)
        if match is None or int(match["index"]) != position:
            problems.append(f"{kind} {tensor.name!r} is not named NAME__{position}")
    return problems


def _contract_dims(model_dir: Path) -> dict[str, tuple[int, ...]]:
    """The reenactor's tensor dims in the render contract of its model file's mode
    (reenact.reenactors); {} for other models."""
    if model_dir.name != REENACTOR_MODEL:
        return {}
    return get_mode(read_model_mode(model_dir / "1" / "model.pt")).contract.tensor_dims()


def _contract_mismatches(
    config: model_config_pb2.ModelConfig, contract: dict[str, tuple[int, ...]]
) -> list[str]:
    """Config dims that the render contract does not allow (-1 in the config allows any)."""
    problems = []
    for tensor in [*config.input, *config.output]:
        if tensor.name in contract and not _dims_match(
            list(tensor.dims), list(contract[tensor.name])
        ):
            problems.append(
                f"{tensor.name}: config dims {list(tensor.dims)}, render contract "
                f"{list(contract[tensor.name])}"
            )
    return problems


def torchscript_mismatches(model_dir: Path) -> list[str]:
    """Mismatches between ``model_dir``'s config.pbtxt and its ``1/model.pt``."""
    config = read_config(model_dir)
    problems = _index_order("input", list(config.input))
    problems += _index_order("output", list(config.output))
    module = torch.jit.load(str(model_dir / "1" / "model.pt"), map_location="cpu").eval()
    arguments = module.forward.schema.arguments[1:]  # after self
    if len(arguments) != len(config.input):
        problems.append(f"forward takes {len(arguments)} tensors, config has {len(config.input)}")
        return problems
    contract = _contract_dims(model_dir)
    problems += _contract_mismatches(config, contract)
    args = []
    for tensor in config.input:
        dims = _full_dims(config, tensor.dims)
        if tensor.name in contract:  # the reenactor: the file's mode fixes the channel count
            dims = [d if d != -1 else c for d, c in zip(dims, contract[tensor.name], strict=True)]
        shape = [TRY_SIZE if d == -1 else d for d in dims]
        args.append(torch.zeros(shape, dtype=TORCH_DTYPES[_type_name(tensor.data_type)]))
    try:
        with torch.inference_mode():
            result = module(*args)
    except RuntimeError as exc:  # TorchScript errors: a shape or dtype the module refuses
        last = str(exc).strip().splitlines()[-1]
        problems.append(f"could not run on zeros of the config's shapes: {last}")
        return problems
    results = list(result) if isinstance(result, tuple | list) else [result]
    if len(results) != len(config.output):
        problems.append(f"returns {len(results)} tensors, config has {len(config.output)}")
        return problems
    for tensor, value in zip(config.output, results, strict=True):
        dtype = TORCH_DTYPES[_type_name(tensor.data_type)]
        expected = _full_dims(config, tensor.dims)
        if config.max_batch_size > 0:
            expected[0] = TRY_SIZE  # the batch must come back as it went in
        if value.dtype != dtype:
            problems.append(f"output {tensor.name}: {value.dtype}, config {dtype}")
        if not _dims_match(expected, list(value.shape)):
            problems.append(f"output {tensor.name}: shape {list(value.shape)}, config {expected}")
    return problems


def _onnx_dims(value_info) -> list[int]:
    """A graph tensor's dims, -1 for a symbolic or unknown one."""
    dims = value_info.type.tensor_type.shape.dim
    return [d.dim_value if d.HasField("dim_value") else -1 for d in dims]


def onnx_mismatches(model_dir: Path, file_name: str = "model.onnx") -> list[str]:
    """Mismatches between ``model_dir``'s config.pbtxt and its ``1/model.onnx``."""
    import onnx

    config = read_config(model_dir)
    graph = onnx.load(str(model_dir / "1" / file_name)).graph
    initialisers = {i.name for i in graph.initializer}
    problems = []
    for kind, tensors, graph_tensors in (
        ("input", config.input, [i for i in graph.input if i.name not in initialisers]),
        ("output", config.output, list(graph.output)),
    ):
        by_name = {t.name: t for t in graph_tensors}
        if set(by_name) != {t.name for t in tensors}:
            problems.append(
                f"{kind}s: graph {sorted(by_name)}, config {sorted(t.name for t in tensors)}"
            )
        for tensor in tensors:
            found = by_name.get(tensor.name)
            if found is None:
                continue
            elem = onnx.TensorProto.DataType.Name(found.type.tensor_type.elem_type)
            if ONNX_TYPES.get(elem) != _type_name(tensor.data_type):
                problems.append(
                    f"{kind} {tensor.name}: graph {elem}, config {_type_name(tensor.data_type)}"
                )
            expected, dims = _full_dims(config, tensor.dims), _onnx_dims(found)
            # every dim the config fixes is fixed to it; each -1 (and the batch) is dynamic
            if len(expected) != len(dims) or any(
                (e == -1) != (d == -1) or (e != -1 and e != d)
                for e, d in zip(expected, dims, strict=True)
            ):
                problems.append(f"{kind} {tensor.name}: graph dims {dims}, config {expected}")
    if not problems:
        problems = _onnx_trial_mismatches(config, model_dir / "1" / file_name)
    return problems


def _onnx_trial_mismatches(config: model_config_pb2.ModelConfig, path: Path) -> list[str]:
    """Mismatches of one ONNX Runtime call on zeros of the config's input shapes (TRY_SIZE for
    the batch and each -1): the outputs' dims against the config's, TRY_SIZE for each -1."""
    import numpy as np
    import onnxruntime
    from onnxruntime.capi import onnxruntime_pybind11_state as ort_state

    errors = (ort_state.Fail, ort_state.InvalidArgument, ort_state.RuntimeException)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feeds = {}
    for tensor in config.input:
        shape = [TRY_SIZE if d == -1 else d for d in _full_dims(config, tensor.dims)]
        feeds[tensor.name] = np.zeros(shape, NUMPY_DTYPES[_type_name(tensor.data_type)])
    try:
        results = session.run([t.name for t in config.output], feeds)
    except errors as exc:  # a shape or dtype the graph refuses
        return [f"could not run on zeros of the config's shapes: {str(exc).splitlines()[-1]}"]
    problems = []
    for tensor, value in zip(config.output, results, strict=True):
        expected = [TRY_SIZE if d == -1 else d for d in _full_dims(config, tensor.dims)]
        if list(value.shape) != expected:
            problems.append(f"output {tensor.name}: shape {list(value.shape)}, config {expected}")
    return problems


def repository_mismatches(repository: Path = PRODUCTION_REPOSITORY) -> list[str]:
    """Every mismatch of every TorchScript and ONNX model of ``repository``, prefixed by it."""
    problems = []
    for name in model_names(repository):
        platform = read_config(repository / name).platform
        if platform == "pytorch_libtorch":
            found = torchscript_mismatches(repository / name)
        elif platform == "onnxruntime_onnx":
            found = onnx_mismatches(repository / name)
        else:
            found = []
        problems += [f"{name}: {problem}" for problem in found]
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("repository", type=Path, nargs="?", default=PRODUCTION_REPOSITORY)
    problems = repository_mismatches(parser.parse_args(argv).repository)
    for problem in problems:
        print(problem, file=sys.stderr)
    print(f"{len(problems)} mismatches")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())

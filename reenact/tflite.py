"""Read the weights and graph of a small float TFLite model into numpy.

The flatbuffer is parsed with the ``tflite`` package (generated from TensorFlow's ``schema.fbs``);
this module turns it into plain dataclasses: the model's operators in execution order, each with
its activation inputs/outputs named by tensor name, its constant inputs as float32/int32 numpy
arrays keyed by role (``kernel``, ``bias``, ``alpha``, ...) and its builtin options as a dict.

float16 weights stored behind ``DEQUANTIZE`` ops (how MediaPipe ships its models) are folded: the
``DEQUANTIZE`` op disappears from :attr:`TFLiteModel.operators` and its float32 output tensor
becomes a constant of the consuming op. Sparse constant weights (TFLite's sparsity format, read
by a ``DENSIFY`` op, as in the pruned ``*_sparse.tflite`` models) are expanded to dense arrays
the same way. Only the operators listed in :data:`SUPPORTED_OPS` are
accepted; anything else raises :class:`UnsupportedModelError`, so a converter never silently
drops part of a graph.

Array layouts are TFLite's (NHWC activations): ``CONV_2D`` kernels are ``(O, KH, KW, I)``,
``DEPTHWISE_CONV_2D`` kernels ``(1, KH, KW, C)``, ``PRELU`` alphas ``(1, 1, C)``. The
``*_to_torch`` helpers convert them to PyTorch's layouts, and :func:`state_dict_from_tflite`
fills a PyTorch module's state dict from the layers named in a module-path → layer-name map.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import tflite
import torch
from torch import nn

SUPPORTED_OPS = (
    "ADD",
    "CONCATENATION",
    "CONV_2D",
    "DENSIFY",
    "DEPTH_TO_SPACE",
    "DEPTHWISE_CONV_2D",
    "DEQUANTIZE",
    "MAX_POOL_2D",
    "PAD",
    "PRELU",
    "RELU",
    "RESHAPE",
    "RESIZE_BILINEAR",
)

# Name of each input position, per operator (TFLite's kernel argument order).
_INPUT_ROLES: dict[str, tuple[str, ...]] = {
    "ADD": ("x", "y"),
    "CONCATENATION": (),  # variadic: roles are "input0", "input1", ...
    "CONV_2D": ("input", "kernel", "bias"),
    "DEPTH_TO_SPACE": ("input",),
    "DEPTHWISE_CONV_2D": ("input", "kernel", "bias"),
    "MAX_POOL_2D": ("input",),
    "PAD": ("input", "paddings"),
    "PRELU": ("input", "alpha"),
    "RELU": ("input",),
    "RESHAPE": ("input", "shape"),
    "RESIZE_BILINEAR": ("input", "size"),
}

_NUMPY_DTYPES: dict[int, np.dtype] = {
    tflite.TensorType.FLOAT32: np.dtype("<f4"),
    tflite.TensorType.FLOAT16: np.dtype("<f2"),
    tflite.TensorType.INT32: np.dtype("<i4"),
    tflite.TensorType.INT64: np.dtype("<i8"),
    tflite.TensorType.UINT8: np.dtype("u1"),
    tflite.TensorType.INT8: np.dtype("i1"),
}


def _enum_names(enum_class: type) -> dict[int, str]:
    return {v: k for k, v in vars(enum_class).items() if not k.startswith("_")}


_OP_NAMES = _enum_names(tflite.BuiltinOperator)
_PADDING_NAMES = _enum_names(tflite.Padding)
_ACTIVATION_NAMES = _enum_names(tflite.ActivationFunctionType)
_TYPE_NAMES = _enum_names(tflite.TensorType)


class UnsupportedModelError(ValueError):
    """The file uses a TFLite feature this reader does not handle (op, tensor type, ...)."""


@dataclass(frozen=True)
class TensorInfo:
    """A graph input or output: tensor name, shape (NHWC for images) and TFLite type name."""

    name: str
    shape: tuple[int, ...]
    dtype: str


@dataclass(frozen=True)
class Operator:
    """One operator of the graph, in execution order.

    ``inputs``/``outputs`` name the (non-constant) activation tensors; ``constants`` holds the
    constant inputs by role, e.g. ``{"kernel": (O, KH, KW, I) float32, "bias": (O,) float32}``
    for ``CONV_2D``; ``options`` the builtin options with enums as names, e.g.
    ``{"padding": "SAME", "stride_h": 2, "stride_w": 2, "activation": "NONE"}``.
    """

    index: int
    opcode: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    constants: dict[str, np.ndarray] = field(repr=False)
    options: dict[str, Any]

    @property
    def name(self) -> str:
        """The layer name: the name of the (first) output tensor, e.g. ``conv2d_3``."""
        return self.outputs[0]


@dataclass(frozen=True)
class TFLiteModel:
    """The first subgraph of a TFLite file, DENSIFY/DEQUANTIZE ops folded into constants."""

    inputs: tuple[TensorInfo, ...]
    outputs: tuple[TensorInfo, ...]
    operators: tuple[Operator, ...]
    op_counts: dict[str, int]
    """Operator histogram of the file as stored (``DENSIFY``/``DEQUANTIZE`` included)."""

    def layer(self, name: str) -> Operator:
        """The operator whose first output tensor is called ``name``; KeyError if none."""
        for op in self.operators:
            if op.name == name:
                return op
        raise KeyError(f"no operator produces a tensor named {name!r}")

    def weight_layers(self) -> list[str]:
        """Names of the operators that carry float weights (kernels, biases, alphas)."""
        return [
            op.name
            for op in self.operators
            if any(a.dtype == np.float32 and a.ndim > 0 for a in op.constants.values())
        ]


def read_tflite(path: str | Path) -> TFLiteModel:
    """Parse a float TFLite model file (single subgraph) into a :class:`TFLiteModel`."""
    data = Path(path).read_bytes()
    model = tflite.Model.GetRootAsModel(data, 0)
    if model.SubgraphsLength() != 1:
        raise UnsupportedModelError(f"{path}: expected 1 subgraph, found {model.SubgraphsLength()}")
    return _Reader(data, model).read()


class _Reader:
    """Walks one subgraph; keeps the tensor-index → constant value table while doing so."""

    def __init__(self, data: bytes, model: tflite.Model) -> None:
        self.data = data
        self.model = model
        self.graph = model.Subgraphs(0)
        self.opcodes = [self._opcode_name(i) for i in range(model.OperatorCodesLength())]
        self.constants: dict[int, np.ndarray] = {}

    def read(self) -> TFLiteModel:
        counts: Counter[str] = Counter()
        operators = []
        for i in range(self.graph.OperatorsLength()):
            raw = self.graph.Operators(i)
            opcode = self.opcodes[raw.OpcodeIndex()]
            counts[opcode] += 1
            if opcode not in SUPPORTED_OPS:
                raise UnsupportedModelError(f"operator {opcode} (op #{i}) is not supported")
            if opcode == "DEQUANTIZE":
                self._fold_dequantize(raw)
            elif opcode == "DENSIFY":
                self._fold_densify(raw)
            else:
                operators.append(self._operator(i, opcode, raw))
        return TFLiteModel(
            inputs=tuple(self._info(j) for j in self.graph.InputsAsNumpy()),
            outputs=tuple(self._info(j) for j in self.graph.OutputsAsNumpy()),
            operators=tuple(operators),
            op_counts=dict(sorted(counts.items())),
        )

    def _opcode_name(self, index: int) -> str:
        code = self.model.OperatorCodes(index)
        # Schema v3a moved builtin codes > 127 to BuiltinCode; older files use the deprecated
        # byte field only, so the larger of the two is the real code.
        return _OP_NAMES[max(code.BuiltinCode(), code.DeprecatedBuiltinCode())]

    def _info(self, index: int) -> TensorInfo:
        tensor = self.graph.Tensors(index)
        return TensorInfo(
            name=tensor.Name().decode(),
            shape=tuple(int(s) for s in tensor.ShapeAsNumpy()) if tensor.ShapeLength() else (),
            dtype=_TYPE_NAMES[tensor.Type()],
        )

    def _tensor_value(self, index: int) -> np.ndarray | None:
        """The constant value of tensor ``index`` (buffer data or folded), else None."""
        if index in self.constants:
            return self.constants[index]
        tensor = self.graph.Tensors(index)
        buffer = self.model.Buffers(tensor.Buffer())
        if buffer.Offset() > 1:  # large models keep buffers after the flatbuffer
            raw = self.data[buffer.Offset() : buffer.Offset() + buffer.Size()]
        elif buffer.DataLength() > 0:
            raw = buffer.DataAsNumpy().tobytes()
        else:
            return None
        if tensor.Type() not in _NUMPY_DTYPES:
            raise UnsupportedModelError(f"tensor type {_TYPE_NAMES[tensor.Type()]} not supported")
        values = np.frombuffer(raw, dtype=_NUMPY_DTYPES[tensor.Type()]).copy()
        shape = tuple(int(s) for s in tensor.ShapeAsNumpy()) if tensor.ShapeLength() else ()
        if tensor.Sparsity() is not None:
            return densify(values, shape, tensor.Sparsity())
        return values.reshape(shape)

    def _fold_dequantize(self, raw: tflite.Operator) -> None:
        (src,) = raw.InputsAsNumpy()
        (dst,) = raw.OutputsAsNumpy()
        value = self._tensor_value(int(src))
        if value is None or value.dtype != np.float16:
            raise UnsupportedModelError("only DEQUANTIZE of constant float16 tensors is supported")
        self.constants[int(dst)] = value.astype(np.float32)

    def _fold_densify(self, raw: tflite.Operator) -> None:
        (src,) = raw.InputsAsNumpy()
        (dst,) = raw.OutputsAsNumpy()
        if self.graph.Tensors(int(src)).Sparsity() is None:
            raise UnsupportedModelError("DENSIFY of a tensor without sparsity parameters")
        value = self._tensor_value(int(src))
        if value is None:
            raise UnsupportedModelError("only DENSIFY of constant tensors is supported")
        self.constants[int(dst)] = value

    def _operator(self, index: int, opcode: str, raw: tflite.Operator) -> Operator:
        roles = _INPUT_ROLES[opcode]
        inputs: list[str] = []
        constants: dict[str, np.ndarray] = {}
        for position, tensor_index in enumerate(raw.InputsAsNumpy()):
            if tensor_index < 0:  # optional input left out (e.g. no bias)
                continue
            role = roles[position] if position < len(roles) else f"input{position}"
            value = self._tensor_value(int(tensor_index))
            if value is None:
                inputs.append(self.graph.Tensors(tensor_index).Name().decode())
            else:
                constants[role] = value
        return Operator(
            index=index,
            opcode=opcode,
            inputs=tuple(inputs),
            outputs=tuple(self.graph.Tensors(j).Name().decode() for j in raw.OutputsAsNumpy()),
            constants=constants,
            options=_options(opcode, raw),
        )


_INDEX_VECTORS: dict[int, type] = {
    tflite.SparseIndexVector.Int32Vector: tflite.Int32Vector,
    tflite.SparseIndexVector.Uint16Vector: tflite.Uint16Vector,
    tflite.SparseIndexVector.Uint8Vector: tflite.Uint8Vector,
}


def _index_vector(kind: int, table: tflite.Table | None) -> np.ndarray:
    """A sparse dimension's segments or indices array as int64."""
    if kind not in _INDEX_VECTORS or table is None:
        raise UnsupportedModelError(f"sparse index vector type {kind} not supported")
    vector = _INDEX_VECTORS[kind]()
    vector.Init(table.Bytes, table.Pos)
    return vector.ValuesAsNumpy().astype(np.int64)


def densify(
    values: np.ndarray, shape: tuple[int, ...], sparsity: tflite.SparsityParameters
) -> np.ndarray:
    """The dense array of a sparse TFLite tensor: ``values (nnz,)`` → ``shape``, zeros elsewhere.

    Supported: dimensions in storage order (identity traversal order, no block map), all DENSE
    except the last, which may be SPARSE_CSR (a row of ``segments`` per leading index, and the
    column ``indices`` of each stored value), the layout of MediaPipe's pruned models.
    """
    order = sparsity.TraversalOrderAsNumpy() if sparsity.TraversalOrderLength() else []
    if list(order) != list(range(len(shape))) or sparsity.BlockMapLength() > 0:
        raise UnsupportedModelError("only sparse tensors in storage order without blocks")
    formats = [sparsity.DimMetadata(d).Format() for d in range(sparsity.DimMetadataLength())]
    dense = tflite.DimensionType.DENSE
    if len(formats) != len(shape) or any(f != dense for f in formats[:-1]):
        raise UnsupportedModelError(f"sparse dimension formats {formats} not supported")
    if formats[-1] == dense:
        return values.reshape(shape)
    last = sparsity.DimMetadata(len(shape) - 1)
    segments = _index_vector(last.ArraySegmentsType(), last.ArraySegments())
    columns = _index_vector(last.ArrayIndicesType(), last.ArrayIndices())
    rows = int(np.prod(shape[:-1]))
    if len(segments) != rows + 1 or segments[-1] != len(values) or len(columns) != len(values):
        raise UnsupportedModelError("sparse tensor segments do not match its values")
    out = np.zeros((rows, shape[-1]), dtype=values.dtype)
    row_of_value = np.repeat(np.arange(rows), np.diff(segments))
    out[row_of_value, columns] = values
    return out.reshape(shape)


def _options(opcode: str, raw: tflite.Operator) -> dict[str, Any]:
    """The builtin options of one operator as a plain dict (enums by name)."""
    table = raw.BuiltinOptions()
    if table is None:
        return {}
    if opcode in ("CONV_2D", "DEPTHWISE_CONV_2D"):
        opt = tflite.Conv2DOptions() if opcode == "CONV_2D" else tflite.DepthwiseConv2DOptions()
        opt.Init(table.Bytes, table.Pos)
        out = {
            "padding": _PADDING_NAMES[opt.Padding()],
            "stride_h": opt.StrideH(),
            "stride_w": opt.StrideW(),
            "dilation_h": opt.DilationHFactor(),
            "dilation_w": opt.DilationWFactor(),
            "activation": _ACTIVATION_NAMES[opt.FusedActivationFunction()],
        }
        if opcode == "DEPTHWISE_CONV_2D":
            out["depth_multiplier"] = opt.DepthMultiplier()
        return out
    if opcode == "MAX_POOL_2D":
        opt = tflite.Pool2DOptions()
        opt.Init(table.Bytes, table.Pos)
        return {
            "padding": _PADDING_NAMES[opt.Padding()],
            "stride_h": opt.StrideH(),
            "stride_w": opt.StrideW(),
            "filter_h": opt.FilterHeight(),
            "filter_w": opt.FilterWidth(),
            "activation": _ACTIVATION_NAMES[opt.FusedActivationFunction()],
        }
    if opcode == "ADD":
        opt = tflite.AddOptions()
        opt.Init(table.Bytes, table.Pos)
        return {"activation": _ACTIVATION_NAMES[opt.FusedActivationFunction()]}
    if opcode == "CONCATENATION":
        opt = tflite.ConcatenationOptions()
        opt.Init(table.Bytes, table.Pos)
        return {"axis": opt.Axis(), "activation": _ACTIVATION_NAMES[opt.FusedActivationFunction()]}
    if opcode == "RESIZE_BILINEAR":
        opt = tflite.ResizeBilinearOptions()
        opt.Init(table.Bytes, table.Pos)
        return {"align_corners": opt.AlignCorners(), "half_pixel_centers": opt.HalfPixelCenters()}
    if opcode == "DEPTH_TO_SPACE":
        opt = tflite.DepthToSpaceOptions()
        opt.Init(table.Bytes, table.Pos)
        return {"block_size": opt.BlockSize()}
    if opcode == "RESHAPE":
        opt = tflite.ReshapeOptions()
        opt.Init(table.Bytes, table.Pos)
        return {"new_shape": tuple(int(s) for s in opt.NewShapeAsNumpy())}
    return {}


def conv_kernel_to_torch(kernel: np.ndarray) -> np.ndarray:
    """``CONV_2D`` kernel ``(O, KH, KW, I)`` → PyTorch ``Conv2d.weight`` ``(O, I, KH, KW)``."""
    return np.ascontiguousarray(kernel.transpose(0, 3, 1, 2))


def depthwise_kernel_to_torch(kernel: np.ndarray) -> np.ndarray:
    """``DEPTHWISE_CONV_2D`` kernel (1, KH, KW, C) → grouped ``Conv2d.weight`` (C, 1, KH, KW)."""
    return np.ascontiguousarray(kernel.transpose(3, 0, 1, 2))


def prelu_alpha_to_torch(alpha: np.ndarray) -> np.ndarray:
    """``PRELU`` alpha ``(1, 1, C)`` (per channel) → ``nn.PReLU.weight`` ``(C,)``."""
    if alpha.shape[:-1] != (1,) * (alpha.ndim - 1):
        raise UnsupportedModelError(f"PRELU alpha of shape {alpha.shape} is not per-channel")
    return np.ascontiguousarray(alpha.reshape(-1))


def state_dict_from_tflite(
    module: nn.Module, layers: dict[str, str], model: TFLiteModel
) -> dict[str, torch.Tensor]:
    """The state dict of ``module`` filled from ``model``'s weights, checked for completeness.

    ``layers`` maps a submodule path of ``module`` (an ``nn.Conv2d`` or ``nn.PReLU``) to the TFLite
    layer that holds its weights. Convolutions must agree in kind (depthwise iff ``groups > 1``),
    kernel shape and stride, in padding when the module has a ``tf_padding`` attribute, and in
    fused activation (the module's ``tf_activation`` attribute, ``"NONE"`` if it has none).
    Raises :class:`UnsupportedModelError` when a layer does not fit, when a weight layer of the
    model is left unused, or when a state dict entry of the module is left unfilled.
    """
    state: dict[str, np.ndarray] = {}
    for path, layer in layers.items():
        submodule = module.get_submodule(path)
        op = model.layer(layer)
        if isinstance(submodule, nn.Conv2d):
            state.update(_conv_state(path, submodule, op))
        elif isinstance(submodule, nn.PReLU):
            if op.opcode != "PRELU":
                raise UnsupportedModelError(f"{path}: {layer} is {op.opcode}, expected PRELU")
            state[f"{path}.weight"] = prelu_alpha_to_torch(op.constants["alpha"])
        else:
            raise TypeError(f"{path}: no TFLite conversion for {type(submodule).__name__}")
    unused = set(model.weight_layers()) - set(layers.values())
    if unused:
        raise UnsupportedModelError(f"weight layers not mapped to the module: {sorted(unused)}")
    expected = module.state_dict()
    if set(expected) != set(state):
        raise UnsupportedModelError(
            f"state dict keys left unfilled: {sorted(set(expected) - set(state))}"
        )
    for key, value in state.items():
        if tuple(expected[key].shape) != value.shape:
            raise UnsupportedModelError(
                f"{key}: TFLite shape {value.shape} != module shape {tuple(expected[key].shape)}"
            )
    return {key: torch.from_numpy(value.astype(np.float32)) for key, value in state.items()}


def _conv_state(path: str, conv: nn.Conv2d, op: Operator) -> dict[str, np.ndarray]:
    depthwise = conv.groups > 1
    expected_opcode = "DEPTHWISE_CONV_2D" if depthwise else "CONV_2D"
    if op.opcode != expected_opcode:
        raise UnsupportedModelError(f"{path}: {op.name} is {op.opcode}, expected {expected_opcode}")
    if (op.options["stride_h"], op.options["stride_w"]) != tuple(conv.stride):
        raise UnsupportedModelError(f"{path}: stride {conv.stride} differs from {op.name}")
    # A module whose forward applies the activation itself says so with ``tf_activation``.
    activation = getattr(conv, "tf_activation", "NONE")
    if op.options["activation"] != activation:
        raise UnsupportedModelError(
            f"{path}: {op.name} has fused activation {op.options['activation']}, not {activation}"
        )
    if op.options["dilation_h"] != 1 or op.options["dilation_w"] != 1:
        raise UnsupportedModelError(f"{path}: {op.name} is dilated")
    tf_padding = getattr(conv, "tf_padding", None)
    if tf_padding is not None and max(conv.kernel_size) > 1 and tf_padding != op.options["padding"]:
        raise UnsupportedModelError(f"{path}: padding {tf_padding} != {op.options['padding']}")
    kernel = op.constants["kernel"]
    weight = depthwise_kernel_to_torch(kernel) if depthwise else conv_kernel_to_torch(kernel)
    return {f"{path}.weight": weight, f"{path}.bias": op.constants["bias"]}

"""A stand-in for ``triton_python_backend_utils`` to unit-test one model.py in-process.

Only the pieces the project's models use; behaviour follows the python backend's documentation.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import numpy as np

REPO = Path(__file__).resolve().parents[2]


class TritonError:
    UNKNOWN, INTERNAL, NOT_FOUND, INVALID_ARG, UNAVAILABLE, UNSUPPORTED = range(6)

    def __init__(self, message: str, code: int = 1) -> None:
        self._message, self._code = message, code

    def message(self) -> str:
        return self._message

    def code(self) -> int:
        return self._code


class Tensor:
    def __init__(self, name: str, array: np.ndarray) -> None:
        self._name, self._array = name, np.asarray(array)

    def name(self) -> str:
        return self._name

    def as_numpy(self) -> np.ndarray:
        return self._array


class InferenceRequest:
    def __init__(self, inputs: list[Tensor]) -> None:
        self._inputs = inputs

    def inputs(self) -> list[Tensor]:
        return self._inputs


class InferenceResponse:
    def __init__(self, output_tensors=None, error: TritonError | None = None) -> None:
        self._outputs = list(output_tensors or [])
        self._error = error

    def output_tensors(self) -> list[Tensor]:
        return self._outputs

    def has_error(self) -> bool:
        return self._error is not None

    def error(self) -> TritonError | None:
        return self._error

    def output(self, name: str) -> np.ndarray:
        return next(t.as_numpy() for t in self._outputs if t.name() == name)


def triton_string_to_numpy(name: str) -> type:
    kinds = {"TYPE_FP32": np.float32, "TYPE_INT32": np.int32, "TYPE_INT64": np.int64}
    kinds.update({"TYPE_UINT8": np.uint8, "TYPE_BOOL": np.bool_, "TYPE_STRING": np.object_})
    return kinds[name]


def get_input_tensor_by_name(request: InferenceRequest, name: str) -> Tensor | None:
    return next((t for t in request.inputs() if t.name() == name), None)


def install(monkeypatch) -> ModuleType:
    """Put this module in place of ``triton_python_backend_utils`` for the test."""
    module = sys.modules[__name__]
    monkeypatch.setitem(sys.modules, "triton_python_backend_utils", module)
    for name in [m for m in sys.modules if m == "reenact.serving.backend"]:
        monkeypatch.delitem(sys.modules, name)
    return module


def load_model(
    name: str,
    parameters: dict[str, str] | None = None,
    config: dict | None = None,
    repository: Path = REPO / "model_repository",
):
    """Import <repository>/<name>/1/model.py and initialise it like Triton does."""
    path = repository / name / "1" / "model.py"
    spec = importlib.util.spec_from_file_location(f"model_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    model = module.TritonPythonModel()
    params = {k: {"string_value": v} for k, v in (parameters or {}).items()}
    full = {"name": name, "parameters": params, **(config or {})}
    model.initialize(
        {
            "model_config": json.dumps(full),
            "model_repository": str(repository / name),
            "model_version": "1",
        }
    )
    return model

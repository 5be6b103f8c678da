"""Helpers shared by the python-backend models (imported only inside a Triton python backend).

They keep each ``model.py`` thin: read inputs with validation, answer bad requests with
``INVALID_ARG``, build output tensors. Library code raises :class:`RequestError` for anything the
caller did wrong; :func:`handle_requests` turns it into a per-request error response, so one bad
request never fails its batch-mates.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import triton_python_backend_utils as pb_utils

from reenact.errors import RequestError

log = logging.getLogger(__name__)


class DependencyError(RuntimeError):
    """A model called through BLS failed for a reason that is not the caller's."""


def error_response(message: str) -> Any:
    """An ``INVALID_ARG`` response carrying ``message``."""
    return pb_utils.InferenceResponse(
        error=pb_utils.TritonError(message, pb_utils.TritonError.INVALID_ARG)
    )


def parse_model_config(args: dict[str, str]) -> dict[str, Any]:
    """The model config JSON that Triton passes to ``initialize``."""
    return json.loads(args["model_config"])


def optional_input(request: Any, name: str) -> np.ndarray | None:
    """The named input as a NumPy array, or None when the request omits it."""
    tensor = pb_utils.get_input_tensor_by_name(request, name)
    return None if tensor is None else tensor.as_numpy()


def required_input(request: Any, name: str) -> np.ndarray:
    """The named input as a NumPy array; RequestError when it is missing."""
    value = optional_input(request, name)
    if value is None:
        raise RequestError(f"missing input {name}")
    return value


def single_bytes(value: np.ndarray, name: str) -> bytes:
    """The one BYTES element of ``value`` (any shape with exactly one element)."""
    if value.size != 1:
        raise RequestError(f"{name} must hold exactly one element, got shape {list(value.shape)}")
    item = value.reshape(-1)[0]
    if not isinstance(item, bytes):
        raise RequestError(f"{name} must be BYTES")
    return item


def output_tensors(outputs: dict[str, np.ndarray]) -> Any:
    """A successful response holding ``outputs`` (name → array)."""
    return pb_utils.InferenceResponse(
        output_tensors=[pb_utils.Tensor(name, array) for name, array in outputs.items()]
    )


def handle_requests(
    requests: Sequence[Any], handle: Callable[[Any], dict[str, np.ndarray]]
) -> list[Any]:
    """Run ``handle`` on each request; a RequestError becomes that request's INVALID_ARG, any
    other failure that request's INTERNAL error (logged), so batch-mates still get answers."""
    responses = []
    for request in requests:
        try:
            responses.append(output_tensors(handle(request)))
        except RequestError as exc:
            responses.append(error_response(str(exc)))
        except Exception as exc:  # the request boundary: answer, log, keep serving
            log.exception("request failed")
            responses.append(
                pb_utils.InferenceResponse(
                    error=pb_utils.TritonError(
                        f"internal error: {exc}", pb_utils.TritonError.INTERNAL
                    )
                )
            )
    return responses


def bls(model: str, inputs: dict[str, np.ndarray], outputs: Sequence[str]) -> dict[str, np.ndarray]:
    """Call another model of the server (Business Logic Scripting); every BLS call goes here.

    A callee's INVALID_ARG becomes a RequestError carrying its message; any other error is a
    DependencyError. Triton 2.51 hands BLS callers every callee error as INTERNAL, so a model
    must check what its client sent itself rather than rely on a callee to refuse it.
    """
    request = pb_utils.InferenceRequest(
        model_name=model,
        inputs=[pb_utils.Tensor(name, array) for name, array in inputs.items()],
        requested_output_names=list(outputs),
        preferred_memory=pb_utils.PreferredMemory(pb_utils.TRITONSERVER_MEMORY_CPU, 0),
    )
    response = request.exec()
    if response.has_error():
        error = response.error()
        if error.code() == pb_utils.TritonError.INVALID_ARG:
            raise RequestError(error.message())
        raise DependencyError(f"{model} failed (code {error.code()}): {error.message()}")
    return {name: pb_utils.get_output_tensor_by_name(response, name).as_numpy() for name in outputs}

"""A small Python client for the public ``face_reenactment`` endpoint, over gRPC or HTTP.

    client = ReenactClient("127.0.0.1:8001")               # gRPC; protocol="http" for :8000
    result = client.reenact(open("photo.jpg", "rb").read(), emotions=["happy", "sad"])
    for name, png in zip(result.emotions, result.images):
        open(f"{name}.png", "wb").write(png)

Errors from the server (a photo without a face, an unknown emotion, …) raise
:class:`ReenactError` carrying the server's message.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

MODEL = "face_reenactment"
OUTPUTS = ("IMAGES", "EMOTIONS", "TARGET_PARAMS", "SOURCE_PARAMS", "FACE_BOX")


class ReenactError(RuntimeError):
    """The server refused or failed a request; ``str()`` is its message."""

    def __init__(self, message: str, status: str | None = None) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class ReenactResult:
    images: list[bytes]  # K encoded images (PNG or JPEG)
    emotions: list[str]  # K names (or "expression_<k>" for raw EXPRESSION rows)
    target_params: np.ndarray  # (K, P) float32
    source_params: np.ndarray  # (P,) float32
    face_box: np.ndarray  # (4,) float32 x0, y0, x1, y1 in the original photo


def _protocol_module(protocol: str) -> Any:
    if protocol == "grpc":
        return grpcclient
    if protocol == "http":
        return httpclient
    raise ValueError(f"protocol must be 'grpc' or 'http', got {protocol!r}")


class ReenactClient:
    """Calls ``face_reenactment`` on a Triton server at ``url`` (host:port)."""

    def __init__(
        self, url: str, protocol: str = "grpc", model: str = MODEL, timeout_s: float = 120.0
    ) -> None:
        self.module = _protocol_module(protocol)
        self.protocol = protocol
        self.model = model
        self.timeout_s = timeout_s
        if protocol == "http":
            self.connection = httpclient.InferenceServerClient(
                url, connection_timeout=timeout_s, network_timeout=timeout_s
            )
        else:
            self.connection = grpcclient.InferenceServerClient(url)

    def close(self) -> None:
        self.connection.close()

    def __enter__(self) -> ReenactClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _input(self, name: str, array: np.ndarray, datatype: str) -> Any:
        tensor = self.module.InferInput(name, list(array.shape), datatype)
        tensor.set_data_from_numpy(array)
        return tensor

    def build_inputs(
        self,
        image: bytes,
        emotions: Sequence[str] | None = None,
        intensity: float | None = None,
        head_pose: Sequence[float] | None = None,
        expression: np.ndarray | None = None,
        output_format: str | None = None,
        paste_back: bool | None = None,
        face_index: int | None = None,
    ) -> list[Any]:
        """The request's input tensors; options left at None are not sent (server defaults)."""
        inputs = [self._input("IMAGE", np.array([image], dtype=object), "BYTES")]
        if emotions is not None:
            names = np.array([e.encode() for e in emotions], dtype=object)
            inputs.append(self._input("EMOTIONS", names, "BYTES"))
        if intensity is not None:
            inputs.append(self._input("INTENSITY", np.array([intensity], np.float32), "FP32"))
        if head_pose is not None:
            inputs.append(self._input("HEAD_POSE", np.asarray(head_pose, np.float32), "FP32"))
        if expression is not None:
            inputs.append(self._input("EXPRESSION", np.asarray(expression, np.float32), "FP32"))
        if output_format is not None:
            fmt = np.array([output_format.encode()], dtype=object)
            inputs.append(self._input("OUTPUT_FORMAT", fmt, "BYTES"))
        if paste_back is not None:
            inputs.append(self._input("PASTE_BACK", np.array([paste_back], np.bool_), "BOOL"))
        if face_index is not None:
            inputs.append(self._input("FACE_INDEX", np.array([face_index], np.int32), "INT32"))
        return inputs

    def reenact(self, image: bytes, **options: Any) -> ReenactResult:
        """Send one photo; options as :meth:`build_inputs`. Raises ReenactError."""
        inputs = self.build_inputs(image, **options)
        outputs = [self.module.InferRequestedOutput(name) for name in OUTPUTS]
        kwargs = {"client_timeout": self.timeout_s} if self.protocol == "grpc" else {}
        try:
            result = self.connection.infer(self.model, inputs, outputs=outputs, **kwargs)
        except InferenceServerException as exc:
            raise ReenactError(exc.message() or str(exc), str(exc.status())) from exc
        return ReenactResult(
            images=[bytes(b) for b in result.as_numpy("IMAGES").reshape(-1)],
            emotions=[e.decode() for e in result.as_numpy("EMOTIONS").reshape(-1)],
            target_params=result.as_numpy("TARGET_PARAMS"),
            source_params=result.as_numpy("SOURCE_PARAMS"),
            face_box=result.as_numpy("FACE_BOX"),
        )

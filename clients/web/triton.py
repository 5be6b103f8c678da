"""The gateway's calls to ``face_reenactment``, and the server's errors as the page's errors.

Every call goes through :class:`reenact.client.ReenactClient` over gRPC (thread-safe for unary
calls: one client serves every request), run in worker threads so the event loop keeps
streaming while the server works.
"""

from __future__ import annotations

import asyncio
import base64
import re
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
from tritonclient.utils import InferenceServerException

from reenact.client import ReenactClient, ReenactError, ReenactResult

# FACE_INDEX far past any photo's faces: the refusal says how many faces the photo has
PROBE_FACE_INDEX = 2**31 - 1
_FACE_COUNT = re.compile(r"(\d+) face\(s\) found")
UNAVAILABLE = "server unavailable"
HEALTH_TIMEOUT_S = 5.0


class GatewayError(Exception):
    """A request the page gets a JSON error for: HTTP ``status``, a ``kind`` the page picks its
    heading by, the message (the server's own text where the server refused) and, where the
    message is the gateway's, the server's words as ``detail``."""

    def __init__(self, status: int, kind: str, message: str, detail: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.kind = kind
        self.detail = detail


def gateway_error(exc: ReenactError, triton_url: str) -> GatewayError:
    """The page's error for a failed call; ``exc.status`` is gRPC's ``StatusCode.<NAME>``."""
    status = exc.status or ""
    message = str(exc)
    if status.endswith("UNAVAILABLE"):
        return GatewayError(
            503,
            "unavailable",
            f"{UNAVAILABLE}: the reenactment server at {triton_url} cannot be reached. "
            "Start it (make serve or make web) and try again.",
            message,
        )
    if status.endswith("DEADLINE_EXCEEDED"):
        return GatewayError(504, "timeout", "the server did not answer in time", message)
    if status.endswith("INVALID_ARGUMENT"):
        kind = "no_face" if message.lower().startswith("no face") else "invalid"
        return GatewayError(400, kind, message)
    return GatewayError(502, "server_error", "the server failed the request", message)


@dataclass(frozen=True)
class RenderRequest:
    """What one page request asks for, as ReenactClient options.

    Either ``emotions`` (K names) or ``expression`` ((1, 55) float32 blendshape weights).
    """

    emotions: tuple[str, ...] = ()
    expression: np.ndarray | None = None
    intensity: float = 1.0
    head_pose: tuple[float, float, float] = (0.0, 0.0, 0.0)
    face_index: int | None = None

    def batches(self, size: int) -> list[dict[str, Any]]:
        """The options of each Triton request: ``size`` emotions each, or the one expression."""
        common: dict[str, Any] = {"head_pose": self.head_pose, "face_index": self.face_index}
        if self.expression is not None:
            return [{**common, "expression": self.expression}]
        common["intensity"] = self.intensity
        names = self.emotions
        return [{**common, "emotions": names[i : i + size]} for i in range(0, len(names), size)]


def result_lines(result: ReenactResult) -> list[dict[str, Any]]:
    """One JSON line per image: its name, the JPEG as base64 and the face's box in the photo."""
    box = [round(float(v), 2) for v in result.face_box]
    return [
        {"emotion": name, "image": base64.b64encode(image).decode("ascii"), "face_box": box}
        for name, image in zip(result.emotions, result.images, strict=True)
    ]


class TritonGateway:
    """Calls ``face_reenactment`` at ``triton_url`` for the page."""

    def __init__(
        self, triton_url: str, timeout_s: float, parallel: int, executor: ThreadPoolExecutor
    ) -> None:
        self.triton_url = triton_url
        self.client = ReenactClient(triton_url, protocol="grpc", timeout_s=timeout_s)
        self.parallel = parallel
        self.executor = executor

    def close(self) -> None:
        self.client.close()

    async def _call(self, func: Callable[[], Any]) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.executor, func)

    async def reenact(self, image: bytes, **options: Any) -> ReenactResult:
        """One Triton request; GatewayError on failure."""
        try:
            return await self._call(lambda: self.client.reenact(image, **options))
        except ReenactError as exc:
            raise gateway_error(exc, self.triton_url) from exc

    async def is_ready(self) -> bool:
        """Whether Triton answers that it is ready within HEALTH_TIMEOUT_S."""
        connection = self.client.connection
        try:
            ready = await self._call(
                lambda: connection.is_server_ready(client_timeout=HEALTH_TIMEOUT_S)
            )
        except InferenceServerException:  # unreachable, or no answer in time
            return False
        return bool(ready)

    async def count_faces(self, image: bytes) -> int:
        """How many faces the server finds in ``image`` (one cheap refused request)."""
        try:
            await self.reenact(image, emotions=["neutral"], face_index=PROBE_FACE_INDEX)
        except GatewayError as exc:
            found = _FACE_COUNT.search(str(exc))
            if exc.kind == "invalid" and found:
                return int(found.group(1))
            raise
        raise GatewayError(502, "server_error", "the server accepted an impossible FACE_INDEX")

    async def face_boxes(self, image: bytes, count: int) -> list[list[float] | None]:
        """The box (x0, y0, x1, y1 in the photo) of faces 0..count-1, counted from the left;
        None for a face the server will not reenact."""
        limit = asyncio.Semaphore(self.parallel)

        async def box(index: int) -> list[float] | None:
            async with limit:
                try:
                    result = await self.reenact(image, emotions=["neutral"], face_index=index)
                except GatewayError as exc:
                    if exc.kind in ("unavailable", "timeout"):
                        raise
                    return None
            return [round(float(v), 2) for v in result.face_box]

        return list(await asyncio.gather(*(box(i) for i in range(count))))

    async def stream(
        self, image: bytes, batches: Sequence[dict[str, Any]]
    ) -> AsyncIterator[dict[str, Any]]:
        """Start ``batches``, at most ``parallel`` at a time, and wait for the first to finish:
        when it failed, raise its GatewayError (the page gets a proper HTTP status); else return
        the JSON lines of every batch, each as soon as it is done."""
        limit = asyncio.Semaphore(self.parallel)

        async def run(options: dict[str, Any]) -> ReenactResult:
            async with limit:
                return await self.reenact(image, **options)

        tasks = {asyncio.ensure_future(run(options)): options for options in batches}
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            failed = [task for task in done if task.exception() is not None]
            if failed:
                raise failed[0].exception()  # type: ignore[misc]
        except BaseException:
            for task in tasks:
                task.cancel()
            raise
        return self._lines(tasks)

    async def _lines(
        self, tasks: dict[asyncio.Future[ReenactResult], dict[str, Any]]
    ) -> AsyncIterator[dict[str, Any]]:
        """Each task's lines as it finishes (a failed batch: one line with its error); the
        tasks still running are cancelled when the page goes away."""
        remaining = set(tasks)
        try:
            while remaining:
                done, remaining = await asyncio.wait(remaining, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    error = task.exception()
                    if isinstance(error, GatewayError):
                        names = list(tasks[task].get("emotions", ["expression"]))
                        yield {
                            "error": str(error),
                            "kind": error.kind,
                            "detail": error.detail,
                            "emotions": names,
                        }
                    elif error is not None:
                        raise error
                    else:
                        for line in result_lines(task.result()):
                            yield line
        finally:
            for task in remaining:
                task.cancel()

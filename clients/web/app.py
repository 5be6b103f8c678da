"""The gateway: the page, its JSON API and the checks made before anything reaches Triton.

==========================  ===================================================================
``GET /``                   the page (``static/``); nothing is loaded from another host
``GET /api/limits``         the server's upload and option limits, read from the code
``GET /api/emotions``       the emotion names, the 15 defaults and the editor's blendshapes
``GET /api/health``         whether Triton answers
``POST /api/reenact``       body: the photo. Query: ``emotion`` (repeated) or ``blendshape``
                            (``name:weight``, repeated: one EXPRESSION row), ``intensity``,
                            ``yaw``, ``pitch``, ``roll``, ``face``. Answer: NDJSON, one line per
                            image as it is made, then ``{"done": true, ...}``
``POST /api/faces``         body: the photo. Answer: how many faces and their boxes
==========================  ===================================================================

Errors are JSON ``{"error": message, "kind": kind, "detail": text}``: 413 ``too_large`` and 415
``not_image`` (checked here), 400 ``no_face`` or ``invalid`` (the server's own message), 503
``unavailable`` (Triton cannot be reached), 504 ``timeout``, 502 ``server_error``; ``detail`` holds
the server's words where ``error`` is the gateway's.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import FastAPI, Query, Request
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles

from clients.web.triton import GatewayError, RenderRequest, TritonGateway
from clients.web.upload import UploadRefused, check_declared_size, check_kind, read_limited
from reenact.emotions import load_catalogue
from reenact.image_codec import ACCEPTED_FORMATS, ACCEPTED_TEXT, DecodeLimits
from reenact.morphable import MorphableModel
from reenact.reenactment import ReenactmentConfig

STATIC_DIR = Path(__file__).resolve().parent / "static"

# the expression editor's sliders: ICT blendshapes (reenact.morphable) a person can name
EDITOR_BLENDSHAPES = (
    "jawOpen",
    "mouthSmile_L",
    "mouthSmile_R",
    "mouthFrown_L",
    "mouthFrown_R",
    "mouthPucker",
    "browInnerUp_L",
    "browInnerUp_R",
    "browDown_L",
    "browDown_R",
    "eyeBlink_L",
    "eyeBlink_R",
    "eyeWide_L",
    "eyeWide_R",
)

# everything the page loads comes from this gateway; images are blob: URLs made by the page
CONTENT_SECURITY_POLICY = "default-src 'self'; img-src 'self' blob:; object-src 'none'"


@dataclass(frozen=True)
class GatewayConfig:
    """How the gateway reaches Triton and what it accepts (the server's own limits)."""

    triton_url: str = "127.0.0.1:8001"
    limits: DecodeLimits = field(default_factory=DecodeLimits)
    reenactment: ReenactmentConfig = field(default_factory=ReenactmentConfig)
    batch_size: int = 5  # emotions per Triton request: the first images come back sooner
    parallel_requests: int = 2  # Triton requests one page request keeps in flight
    worker_threads: int = 8  # threads waiting on Triton for all page requests together
    timeout_s: float = 60.0  # per Triton request
    max_faces: int = 12  # faces whose boxes /api/faces looks up (the rest are only counted)
    editor_blendshapes: tuple[str, ...] = EDITOR_BLENDSHAPES


@dataclass(frozen=True)
class Catalogue:
    """The names the page offers."""

    emotions: tuple[str, ...]  # every emotion, neutral first
    default: tuple[str, ...]  # the 15 the page starts with
    expression_names: tuple[str, ...]  # the 55 ICT blendshapes in EXPRESSION's column order

    @classmethod
    def load(cls) -> Catalogue:
        names = MorphableModel.load().expression_names
        catalogue = load_catalogue(names)
        return cls(tuple(catalogue.emotions), catalogue.default, names)


def limits_body(config: GatewayConfig) -> dict[str, Any]:
    yaw, pitch, roll = config.reenactment.max_head_pose_deg
    return {
        "max_bytes": config.limits.max_bytes,
        "max_pixels": config.limits.max_pixels,
        "accepted_formats": list(ACCEPTED_FORMATS),
        "accepted_text": ACCEPTED_TEXT,
        "max_targets": config.reenactment.max_targets,
        "max_intensity": config.reenactment.max_intensity,
        "max_head_pose_deg": {"yaw": yaw, "pitch": pitch, "roll": roll},
    }


def parse_blendshapes(items: list[str], catalogue: Catalogue) -> np.ndarray:
    """``["jawOpen:0.5", ...]`` as a (1, 55) float32 EXPRESSION row; GatewayError if malformed
    (the range of the weights is the server's to check)."""
    row = np.zeros((1, len(catalogue.expression_names)), np.float32)
    for item in items:
        name, _, weight = item.partition(":")
        if name not in catalogue.expression_names:
            raise GatewayError(400, "invalid", f"unknown blendshape {name!r}")
        try:
            row[0, catalogue.expression_names.index(name)] = float(weight)
        except ValueError as exc:
            raise GatewayError(400, "invalid", f"blendshape {item!r}: weight is no number") from exc
    return row


async def read_photo(request: Request, config: GatewayConfig) -> bytes:
    """The request body, checked against the server's byte limit and accepted kinds."""
    check_declared_size(request.headers.get("content-length"), config.limits)
    data = await read_limited(request.stream(), config.limits)
    check_kind(data, config.limits)
    return data


async def ndjson(first_lines: AsyncIterator[dict[str, Any]]) -> AsyncIterator[bytes]:
    images = failed = 0
    async for line in first_lines:
        images += "image" in line
        failed += len(line.get("emotions", [])) if "error" in line else 0
        yield (json.dumps(line) + "\n").encode()
    yield (json.dumps({"done": True, "images": images, "failed": failed}) + "\n").encode()


def error_response(status: int, kind: str, message: str, detail: str = "") -> JSONResponse:
    return JSONResponse({"error": message, "kind": kind, "detail": detail}, status_code=status)


def create_app(config: GatewayConfig | None = None, catalogue: Catalogue | None = None) -> FastAPI:
    """The gateway as an ASGI app (serve it with uvicorn)."""
    config = config or GatewayConfig()
    catalogue = catalogue or Catalogue.load()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        with ThreadPoolExecutor(config.worker_threads, thread_name_prefix="triton") as executor:
            app.state.gateway = TritonGateway(
                config.triton_url, config.timeout_s, config.parallel_requests, executor
            )
            yield
            app.state.gateway.close()

    app = FastAPI(title="reenact web", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    add_error_handlers(app)
    add_routes(app, config, catalogue)
    return app


def add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(GatewayError)
    async def gateway_failed(request: Request, exc: GatewayError) -> JSONResponse:
        return error_response(exc.status, exc.kind, str(exc), exc.detail)

    @app.exception_handler(UploadRefused)
    async def upload_refused(request: Request, exc: UploadRefused) -> JSONResponse:
        return error_response(exc.status, exc.kind, str(exc))

    @app.middleware("http")
    async def headers(request: Request, call_next: Any) -> Response:
        response = await call_next(request)
        response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
        response.headers["X-Content-Type-Options"] = "nosniff"
        if request.url.path.startswith("/api/"):
            response.headers["Cache-Control"] = "no-store"
        return response


def add_routes(app: FastAPI, config: GatewayConfig, catalogue: Catalogue) -> None:
    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html")

    @app.get("/api/limits")
    async def limits() -> dict[str, Any]:
        return limits_body(config)

    @app.get("/api/emotions")
    async def emotions() -> dict[str, Any]:
        return {
            "emotions": list(catalogue.emotions),
            "default": list(catalogue.default),
            "blendshapes": list(config.editor_blendshapes),
        }

    @app.get("/api/health")
    async def health(request: Request) -> JSONResponse:
        ready = await request.app.state.gateway.is_ready()
        body = {"ready": ready, "triton": config.triton_url}
        return JSONResponse(body, status_code=200 if ready else 503)

    @app.post("/api/faces")
    async def faces(request: Request) -> dict[str, Any]:
        photo = await read_photo(request, config)
        gateway: TritonGateway = request.app.state.gateway
        count = await gateway.count_faces(photo)
        boxes = await gateway.face_boxes(photo, min(count, config.max_faces))
        return {"count": count, "faces": [{"index": i, "box": b} for i, b in enumerate(boxes)]}

    @app.post("/api/reenact")
    async def reenact(
        request: Request,
        emotion: list[str] = Query(default=[]),  # noqa: B008 (FastAPI's way)
        blendshape: list[str] = Query(default=[]),  # noqa: B008
        intensity: float = 1.0,
        yaw: float = 0.0,
        pitch: float = 0.0,
        roll: float = 0.0,
        face: int | None = None,
    ) -> StreamingResponse:
        pose = (yaw, pitch, roll)
        render = render_request(config, catalogue, emotion, blendshape, intensity, pose, face)
        photo = await read_photo(request, config)
        gateway: TritonGateway = request.app.state.gateway
        lines = await gateway.stream(photo, render.batches(config.batch_size))
        return StreamingResponse(ndjson(lines), media_type="application/x-ndjson")


def render_request(
    config: GatewayConfig,
    catalogue: Catalogue,
    emotions: list[str],
    blendshapes: list[str],
    intensity: float,
    head_pose: tuple[float, float, float],
    face: int | None,
) -> RenderRequest:
    """The page's query as a RenderRequest; GatewayError for what the server cannot be asked."""
    if emotions and blendshapes:
        raise GatewayError(400, "invalid", "send emotion or blendshape values, not both")
    if len(emotions) > config.reenactment.max_targets:
        raise GatewayError(
            400,
            "invalid",
            f"{len(emotions)} emotions asked; the limit is {config.reenactment.max_targets}",
        )
    if blendshapes:
        expression = parse_blendshapes(blendshapes, catalogue)
        return RenderRequest(expression=expression, head_pose=head_pose, face_index=face)
    return RenderRequest(
        emotions=tuple(emotions) or catalogue.default,
        intensity=intensity,
        head_pose=head_pose,
        face_index=face,
    )

"""Truthful health for the served product: a deep check and the supervisor's health endpoints.

The deep check sends a tiny real request through the server's public HTTP endpoint: a face the
project paints itself (the ICT mean head with brows and lips, 160 x 160 pixels, see
:func:`probe_face_png`) goes to ``face_reenactment`` with one emotion, and to ``face_mesh``, so
that every model instance type in the product is exercised (``face_reenactment`` calls
``mesh_predictor`` and ``reenactor`` through BLS; ``face_mesh`` runs ``face_preprocess``,
``mesh_predictor`` and ``face_postprocess``). Only the entry models needed to reach every loaded
model are called (:func:`plan_probes`). Results are cached and run one at a time, so health
probes add at most one small request per cache period.

Everything here uses the standard library only (the supervisor may run where tritonclient is not
installed); painting the probe face needs the reenact library and runs in a child process once
(``python -m reenact.serving.health --write-probe-image PATH``).
"""

from __future__ import annotations

import argparse
import http.server
import json
import logging
import math
import os
import re
import struct
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

PROBE_FACE_SIZE = 160  # pixels: BlazeFace and FaceMesh find the painted head at this size
PROBE_FACE_SCALE = 5.0  # pixels per cm: the head fills about 60 % of the picture's width

UNHEALTHY_STUB = re.compile(r"Stub process '([^']+)' is not healthy")


@dataclass(frozen=True)
class ProbeRequest:
    """One inference the deep check sends: ``model`` with the probe face as ``IMAGE``."""

    model: str
    output: str  # a FP32 output whose values must come back finite
    extra_bytes_inputs: tuple[tuple[str, tuple[bytes, ...]], ...] = ()


PROBE_REQUESTS = (
    ProbeRequest("face_reenactment", "FACE_BOX", (("EMOTIONS", (b"happy",)),)),
    ProbeRequest("face_mesh", "CONFIDENCE"),
    ProbeRequest("face_preprocess", "FACE_BOX"),
)
"""Entry models the deep check may call, in order of preference (most models reached first)."""


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one check: ``ok``, a human-readable ``detail`` and when it was made."""

    ok: bool
    detail: str
    checked_at: float = field(default_factory=time.monotonic)
    unhealthy_instance: str | None = None  # the stub instance an error named, e.g. reenactor_0_0
    timed_out: bool = False

    def as_json(self) -> dict[str, object]:
        return {"ok": self.ok, "detail": self.detail}


def probe_face_png(size: int = PROBE_FACE_SIZE, scale: float = PROBE_FACE_SCALE) -> bytes:
    """PNG bytes of the painted ICT mean head, frontal, ``size`` x ``size`` pixels (RGB)."""
    import cv2

    from reenact.correspondence import view_params
    from reenact.head_render import HeadPainter
    from reenact.morphable import MorphableModel

    model = MorphableModel.load()
    vertices = model.decode(view_params(0.0, 0.0, size, scale))[0]
    image = HeadPainter(model, features=True).paint(vertices, size, size).image
    ok, data = cv2.imencode(".png", image[..., ::-1].copy())
    if not ok:
        raise RuntimeError("PNG encoding of the probe face failed")
    return data.tobytes()


def default_probe_image_path() -> Path:
    from reenact.assets import build_dir

    return build_dir() / "health" / f"probe_face_{PROBE_FACE_SIZE}.png"


def ensure_probe_image(path: Path, timeout_s: float) -> bytes:
    """The probe face at ``path``, painted by a child process first if the file is missing (so
    that the supervisor itself never imports torch)."""
    if not path.is_file():
        cmd = [sys.executable, "-m", "reenact.serving.health", "--write-probe-image", str(path)]
        subprocess.run(cmd, check=True, timeout=timeout_s, stdout=subprocess.DEVNULL)
    return path.read_bytes()


def bytes_tensor(items: Iterable[bytes]) -> bytes:
    """KServe binary form of a BYTES tensor: each element as a little-endian u32 length + data."""
    return b"".join(struct.pack("<I", len(item)) + item for item in items)


def infer_http(base_url: str, request: ProbeRequest, image: bytes, timeout_s: float) -> CheckResult:
    """Send ``request`` to ``http://base_url`` (binary tensor extension); a 200 whose output is
    finite is success, anything else is a failure naming the model and the server's message."""
    inputs = [("IMAGE", (image,)), *request.extra_bytes_inputs]
    payloads = [bytes_tensor(values) for _, values in inputs]
    header = {
        "inputs": [
            {
                "name": name,
                "datatype": "BYTES",
                "shape": [len(values)],
                "parameters": {"binary_data_size": len(payload)},
            }
            for (name, values), payload in zip(inputs, payloads, strict=True)
        ],
        "outputs": [{"name": request.output, "parameters": {"binary_data": False}}],
    }
    head = json.dumps(header).encode()
    http_request = urllib.request.Request(
        f"http://{base_url}/v2/models/{request.model}/infer",
        data=head + b"".join(payloads),
        method="POST",
        headers={
            "Inference-Header-Content-Length": str(len(head)),
            "Content-Type": "application/octet-stream",
        },
    )
    try:
        with urllib.request.urlopen(http_request, timeout=timeout_s) as response:
            body = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        message = exc.read().decode(errors="replace")
        found = UNHEALTHY_STUB.search(message)
        return CheckResult(
            False,
            f"{request.model}: HTTP {exc.code} {message[:300]}",
            unhealthy_instance=found.group(1) if found else None,
        )
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
        timed_out = isinstance(reason, TimeoutError)
        return CheckResult(False, f"{request.model}: {reason}", timed_out=timed_out)
    return _check_output(request, body)


def _check_output(request: ProbeRequest, body: dict) -> CheckResult:
    outputs = {o.get("name"): o.get("data") for o in body.get("outputs", [])}
    values = outputs.get(request.output)
    if not values or not all(isinstance(v, (int, float)) and math.isfinite(v) for v in values):
        return CheckResult(False, f"{request.model}: output {request.output} is {values!r}")
    return CheckResult(True, f"{request.model}: answered")


def plan_probes(
    loaded: Iterable[str],
    dependencies: Callable[[str], Iterable[str]],
    requests: Iterable[ProbeRequest] = PROBE_REQUESTS,
) -> tuple[list[ProbeRequest], set[str]]:
    """The probe requests that reach every loaded model they can, and the loaded models none
    reaches. ``dependencies(model)`` names the models ``model`` calls (ensemble steps, BLS)."""
    loaded = set(loaded)
    covered: set[str] = set()
    chosen = []
    for request in requests:
        if request.model not in loaded:
            continue
        reached = reachable(request.model, dependencies)
        if reached - covered:
            chosen.append(request)
            covered |= reached
    return chosen, loaded - covered


def reachable(model: str, dependencies: Callable[[str], Iterable[str]]) -> set[str]:
    """``model`` and every model it calls, transitively."""
    seen: set[str] = set()
    pending = [model]
    while pending:
        name = pending.pop()
        if name not in seen:
            seen.add(name)
            pending.extend(dependencies(name))
    return seen


class DeepCheck:
    """Cached, one-at-a-time deep check of a server at ``base_url``.

    ``run_probes`` (injected for tests) returns the result of one full check."""

    def __init__(self, run_probes: Callable[[], CheckResult], max_age_s: float) -> None:
        self._run_probes = run_probes
        self.max_age_s = max_age_s
        self._lock = threading.Lock()
        self._last: CheckResult | None = None

    def invalidate(self) -> None:
        """Forget the cached result (after a reload or restart)."""
        self._last = None

    def result(self, max_age_s: float | None = None) -> CheckResult:
        """The cached result if younger than ``max_age_s`` (default: the configured age), else a
        fresh one; concurrent callers wait for the one check in progress and share its result."""
        limit = self.max_age_s if max_age_s is None else max_age_s
        with self._lock:
            last = self._last
            if last is not None and time.monotonic() - last.checked_at < limit:
                return last
            self._last = self._run_probes()
            return self._last


def server_probes(
    base_url: str, image: Callable[[], bytes], timeout_s: float
) -> Callable[[], CheckResult]:
    """A ``run_probes`` for :class:`DeepCheck` against the server at ``base_url``."""

    def run() -> CheckResult:
        try:
            loaded = loaded_models(base_url, timeout_s)
            configs = {name: model_config(base_url, name, timeout_s) for name in loaded}
        except (urllib.error.URLError, ConnectionError, OSError, ValueError) as exc:
            return CheckResult(False, f"repository: {exc}")
        requests, unprobed = plan_probes(loaded, lambda m: config_dependencies(configs.get(m, {})))
        if not requests:
            return CheckResult(False, f"no probe reaches the loaded models {sorted(loaded)}")
        try:
            picture = image()
        except (OSError, subprocess.SubprocessError) as exc:
            return CheckResult(False, f"probe image: {exc}")
        details = []
        for request in requests:
            outcome = infer_http(base_url, request, picture, timeout_s)
            if not outcome.ok:
                return outcome
            details.append(outcome.detail)
        if unprobed:
            details.append(f"not reached: {', '.join(sorted(unprobed))}")
        return CheckResult(True, "; ".join(details))

    return run


# tritonserver's repository API may be restricted to requests carrying a header key that only the
# supervisor holds (the production entrypoint, reenact.deploy.entrypoint, sets both variables)
ADMIN_HEADER_ENV = "REENACT_ADMIN_HEADER"
ADMIN_KEY_ENV = "REENACT_ADMIN_KEY"
DEFAULT_ADMIN_HEADER = "x-reenact-admin"


def admin_headers() -> dict[str, str]:
    """The header that opens tritonserver's restricted admin APIs, or none when no key is set."""
    key = os.environ.get(ADMIN_KEY_ENV)
    if not key:
        return {}
    return {os.environ.get(ADMIN_HEADER_ENV, DEFAULT_ADMIN_HEADER): key}


def _get_json(url: str, timeout_s: float, data: bytes | None = None) -> object:
    method = "POST" if data is not None else "GET"
    request = urllib.request.Request(url, data=data, headers=admin_headers(), method=method)
    with urllib.request.urlopen(request, timeout=timeout_s) as response:
        return json.loads(response.read())


def loaded_models(base_url: str, timeout_s: float) -> list[str]:
    """Models in state READY according to the server's repository index."""
    index = _get_json(f"http://{base_url}/v2/repository/index", timeout_s, data=b"{}")
    return sorted({m["name"] for m in index if m.get("state") == "READY"})  # type: ignore[union-attr]


def model_config(base_url: str, model: str, timeout_s: float) -> dict:
    config = _get_json(f"http://{base_url}/v2/models/{model}/config", timeout_s)
    return config if isinstance(config, dict) else {}


def config_dependencies(config: dict) -> list[str]:
    """Models a model's JSON config calls: ensemble steps and the ``depends_on`` parameter (BLS
    callees the model declares, comma-separated)."""
    steps = config.get("ensemble_scheduling", {}).get("step", [])
    declared = config.get("parameters", {}).get("depends_on", {}).get("string_value", "")
    return [s["model_name"] for s in steps] + [n.strip() for n in declared.split(",") if n.strip()]


class HealthServer:
    """``/health/ready`` and ``/health/live`` on a small HTTP server in a daemon thread.

    Each callable returns (ok, JSON body); ok gives 200, not ok 503."""

    def __init__(
        self,
        host: str,
        port: int,
        ready: Callable[[], tuple[bool, dict]],
        live: Callable[[], tuple[bool, dict]],
    ) -> None:
        routes = {"/health/ready": ready, "/health/live": live}

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                route = routes.get(self.path.split("?", 1)[0])
                if route is None:
                    self._send(404, {"error": f"no such path {self.path}"})
                    return
                ok, body = route()
                self._send(200 if ok else 503, body)

            def _send(self, status: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: object) -> None:
                log.debug("health: " + format, *args)

        self._httpd = http.server.ThreadingHTTPServer((host, port), Handler)
        self._httpd.daemon_threads = True
        self.port = int(self._httpd.server_address[1])
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def start(self) -> HealthServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread.is_alive():
            self._httpd.shutdown()
        self._httpd.server_close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write the deep health check's probe face.")
    parser.add_argument("--write-probe-image", type=Path, default=default_probe_image_path())
    args = parser.parse_args(argv)
    args.write_probe_image.parent.mkdir(parents=True, exist_ok=True)
    data = probe_face_png()
    partial = args.write_probe_image.with_suffix(".partial")
    partial.write_bytes(data)
    partial.replace(args.write_probe_image)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""What the web page's end-to-end tests share: the browser, the gateway in a thread, photos."""

from __future__ import annotations

import io
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import uvicorn
from PIL import Image

from clients.web.app import GatewayConfig, create_app
from reenact.assets import build_dir
from reenact.serving.server import free_port

CHROMIUM_NAMES = ("chromium", "chromium-browser")
CHROMIUM_INSTALL = "install Debian's chromium package: apt-get update && apt-get install chromium"


def screenshot_dir() -> Path:
    folder = build_dir() / "web-screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def find_chromium() -> str | None:
    """The Chromium executable on PATH (Debian's ``chromium`` package), or None."""
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


def jpeg_bytes(image: np.ndarray, quality: int = 92) -> bytes:
    """(H, W, 3) uint8 RGB as JPEG bytes."""
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


@dataclass
class GatewayThread:
    """The gateway app on a free loopback port, served by uvicorn in a thread."""

    config: GatewayConfig
    startup_timeout_s: float = 20.0

    def __post_init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        uv_config = uvicorn.Config(
            create_app(self.config), host="127.0.0.1", port=self.port, log_level="warning"
        )
        self.server = uvicorn.Server(uv_config)
        self.thread = threading.Thread(target=self.server.run, name="web-gateway", daemon=True)

    def __enter__(self) -> GatewayThread:
        self.thread.start()
        deadline = time.monotonic() + self.startup_timeout_s
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError(f"the gateway did not start on port {self.port}")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)

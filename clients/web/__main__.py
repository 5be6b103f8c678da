"""``make web``: a local Triton server and the web gateway together; Ctrl-C stops both.

python -m clients.web                        # starts Triton too; page at http://127.0.0.1:8080
python -m clients.web --triton-url 127.0.0.1:8001   # a server already running (make serve)
python -m clients.web --host 0.0.0.0         # reachable from a phone on the same network
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import signal
import sys
from collections.abc import Iterator

import uvicorn

from clients.web.app import GatewayConfig, create_app
from reenact.serving.server import ServerConfig, TritonServer

log = logging.getLogger("clients.web")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1", help="address the page is served on")
    parser.add_argument("--port", type=int, default=8080, help="port the page is served on")
    parser.add_argument(
        "--triton-url", default=None, help="gRPC host:port of a running server (default: start one)"
    )
    return parser.parse_args(argv)


@contextlib.contextmanager
def triton(url: str | None) -> Iterator[str]:
    """The gRPC URL of ``url``'s server, or of a local one started for the page's lifetime."""
    if url is not None:
        yield url
        return
    log.info("starting a local Triton server with face_reenactment …")
    with TritonServer(ServerConfig(models=("face_reenactment",))) as server:
        yield server.grpc_url
    log.info("Triton stopped")


def stop_on_sigterm(signum: int, frame: object) -> None:
    """uvicorn stops on SIGTERM, then raises it again once its own handler is gone: leave
    through the ``with`` blocks so that the Triton server is stopped too."""
    raise SystemExit(0)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    signal.signal(signal.SIGTERM, stop_on_sigterm)
    with triton(args.triton_url) as grpc_url:
        app = create_app(GatewayConfig(triton_url=grpc_url))
        server = uvicorn.Server(
            uvicorn.Config(app, host=args.host, port=args.port, log_level="warning")
        )
        shown = "127.0.0.1" if args.host in ("0.0.0.0", "::") else args.host
        print(f"\n  reenact web page: http://{shown}:{args.port}/", flush=True)
        print(f"  (Triton gRPC {grpc_url}; Ctrl-C stops the page and any server it started)\n")
        with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C, raised again by uvicorn
            server.run()
        log.info("page stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())

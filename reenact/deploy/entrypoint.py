"""The production image's entrypoint: the supervisor, with tritonserver's admin APIs closed.

    python3 -m reenact.deploy.entrypoint [supervisor options] -- tritonserver [arguments]

tritonserver runs with ``--model-control-mode=explicit`` so that the supervisor can reload a
model whose python-backend stub died (docs/operations.md). That mode also lets anyone who reaches
port 8000 or 8001 load and unload models. Triton 2.51 can restrict API groups to requests that
carry a header: this entrypoint adds

    --http-restricted-api=<RESTRICTED_APIS>:<header>=<key>
    --grpc-restricted-protocol=<RESTRICTED_APIS>:<header>=<key>

to tritonserver's arguments, with the header name from ``$REENACT_ADMIN_HEADER`` (default
:data:`DEFAULT_ADMIN_HEADER`) and the key from ``$REENACT_ADMIN_KEY`` (a Kubernetes Secret, say),
or a random one made here when it is unset; the key reaches the supervisor through its
environment and appears nowhere else. Inference, health, metadata, model configuration and
statistics stay open.

The supervisor must send that header on its repository calls (reload, repository index): one
that declares ``ADMIN_KEY_ENV`` does. With a supervisor that does not, closing the repository
API would stop its reloads and its deep check, so ``$REENACT_RESTRICT_ADMIN_API`` decides:
``auto`` (default: restrict when the supervisor declares support), ``1`` (always), ``0`` (never).
Then it replaces itself (``exec``) with ``python3 -m reenact.serving.supervisor``.
"""

from __future__ import annotations

import logging
import os
import secrets
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from reenact.serving.health import ADMIN_HEADER_ENV, ADMIN_KEY_ENV, DEFAULT_ADMIN_HEADER

log = logging.getLogger("reenact.entrypoint")

RESTRICT_ENV = "REENACT_RESTRICT_ADMIN_API"
# API groups only the supervisor may use: loading/unloading models, registering shared-memory
# regions (a remote client could otherwise map the server's own /dev/shm regions by name),
# trace and log settings.
RESTRICTED_APIS = ("model-repository", "shared-memory", "trace", "logging")
RESTRICT_FLAGS = ("--http-restricted-api", "--grpc-restricted-protocol")


@dataclass(frozen=True)
class Launch:
    """What the entrypoint executes: the supervisor's command line and its environment."""

    argv: tuple[str, ...]
    env: dict[str, str]
    restricted: bool


def supervisor_supports_admin_key() -> bool:
    """Whether the installed supervisor sends the admin header (it names ``ADMIN_KEY_ENV``)."""
    from reenact.serving import supervisor

    return getattr(supervisor, "ADMIN_KEY_ENV", None) == ADMIN_KEY_ENV


def should_restrict(env: Mapping[str, str], supported: bool) -> bool:
    """``$REENACT_RESTRICT_ADMIN_API``: 1 always, 0 never, auto (default) when ``supported``."""
    setting = env.get(RESTRICT_ENV, "auto").strip().lower()
    if setting in ("1", "true", "yes"):
        return True
    if setting in ("0", "false", "no"):
        return False
    if setting != "auto":
        raise ValueError(f"${RESTRICT_ENV}={setting!r}: expected auto, 1 or 0")
    return supported


def restriction_flags(header: str, key: str) -> list[str]:
    """tritonserver's options that restrict :data:`RESTRICTED_APIS` to ``header: key``."""
    if not header or any(c in header + key for c in ":=, \t\n"):
        raise ValueError("the admin header name and key must be non-empty, without :=, or spaces")
    apis = ",".join(RESTRICTED_APIS)
    return [f"{flag}={apis}:{header}={key}" for flag in RESTRICT_FLAGS]


def plan_launch(
    supervisor_args: Sequence[str],
    server_cmd: Sequence[str],
    env: Mapping[str, str],
    supported: bool,
    python: str = sys.executable,
) -> Launch:
    """The supervisor's command line and environment for ``server_cmd`` (tritonserver ...).

    Restriction flags already in ``server_cmd`` are kept as they are, and none are added."""
    if not server_cmd:
        raise ValueError("no tritonserver command after --")
    child_env = dict(env)
    server = list(server_cmd)
    given = any(arg.split("=", 1)[0] in RESTRICT_FLAGS for arg in server)
    restricted = given or should_restrict(env, supported)
    if restricted and not given:
        header = env.get(ADMIN_HEADER_ENV) or DEFAULT_ADMIN_HEADER
        key = env.get(ADMIN_KEY_ENV) or secrets.token_urlsafe(32)
        child_env[ADMIN_HEADER_ENV] = header
        child_env[ADMIN_KEY_ENV] = key
        server += restriction_flags(header, key)
    argv = (python, "-m", "reenact.serving.supervisor", *supervisor_args, "--", *server)
    return Launch(argv, child_env, restricted)


def split_args(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    """``[supervisor options] -- tritonserver ...`` → (options, server command)."""
    args = list(argv)
    if "--" not in args:
        return [], args
    cut = args.index("--")
    return args[:cut], args[cut + 1 :]


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s entrypoint %(message)s")
    supervisor_args, server_cmd = split_args(sys.argv[1:] if argv is None else argv)
    try:
        launch = plan_launch(
            supervisor_args, server_cmd, os.environ, supervisor_supports_admin_key()
        )
    except ValueError as exc:
        log.error("%s", exc)
        return 2
    if launch.restricted:
        log.info("repository, shared-memory, trace and logging APIs need the admin header")
    else:
        log.warning(
            "admin APIs of tritonserver are NOT restricted (%s=%s, supervisor support: %s)",
            RESTRICT_ENV,
            os.environ.get(RESTRICT_ENV, "auto"),
            supervisor_supports_admin_key(),
        )
    os.execvpe(launch.argv[0], list(launch.argv), launch.env)
    return 127  # not reached: exec replaces this process


if __name__ == "__main__":
    sys.exit(main())

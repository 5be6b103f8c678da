"""``python -m reenact.deploy build|run|wait|logs|stop``: see :mod:`reenact.deploy.tool`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from reenact.deploy import tool

EXIT_NO_ENGINE = 2


def _parser() -> argparse.ArgumentParser:
    defaults = tool.DeployConfig()
    parser = argparse.ArgumentParser(prog="python -m reenact.deploy", description=tool.__doc__)
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--tag", default=defaults.tag, help="image name:tag")
    parser.add_argument("--name", default=defaults.name, help="container name")
    commands = parser.add_subparsers(dest="command", required=True)
    build = commands.add_parser("build", help="build the image, streaming its output")
    build.add_argument("--versions", type=Path, default=tool.VERSIONS_FILE)
    build.add_argument("--build-arg", action="append", default=[], metavar="KEY=VALUE")
    run = commands.add_parser("run", help="start the container with GPUs")
    run.add_argument("--gpus", default="all", help="all, or a number of GPUs")
    run.add_argument("--env", action="append", default=[], metavar="KEY=VALUE")
    run.add_argument("--wait", action="store_true", help="then wait for readiness")
    run.add_argument("--timeout", type=float, default=defaults.ready_timeout_s)
    wait = commands.add_parser("wait", help="wait until /health/ready answers 200")
    wait.add_argument("--timeout", type=float, default=defaults.ready_timeout_s)
    logs = commands.add_parser("logs", help="the container's log")
    logs.add_argument("--follow", action="store_true")
    commands.add_parser("stop", help="stop and remove the container")
    return parser


def _config(args: argparse.Namespace) -> tool.DeployConfig:
    build_args: dict[str, str] = {}
    if args.command == "build":
        build_args = {**tool.read_versions(args.versions), **tool.parse_assignments(args.build_arg)}
    gpus = getattr(args, "gpus", "all")
    return tool.DeployConfig(
        tag=args.tag,
        name=args.name,
        build_args=build_args,
        gpus=-1 if gpus == "all" else int(gpus),
        environment=tool.parse_assignments(getattr(args, "env", [])),
        ready_timeout_s=getattr(args, "timeout", tool.DeployConfig.ready_timeout_s),
    )


def _execute(args: argparse.Namespace, config: tool.DeployConfig) -> int:
    out = sys.stdout
    client = tool.connect()
    if args.command == "build":
        image = tool.build(client, config, out)
        out.write(f"built {config.tag} {image}\n")
    elif args.command == "run":
        container = tool.run(client, config)
        out.write(f"started {config.name} ({container.short_id}); health {config.health_url()}\n")
        if args.wait:
            out.write(f"ready after {tool.wait_ready(client, config):.0f} s\n")
    elif args.command == "wait":
        out.write(f"ready after {tool.wait_ready(client, config):.0f} s\n")
    elif args.command == "logs":
        tool.logs(client, config, out, args.follow)
    elif args.command == "stop":
        stopped = tool.stop(client, config)
        out.write(f"{'stopped' if stopped else 'no container'} {config.name}\n")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return _execute(args, _config(args))
    except tool.EngineUnavailable as exc:
        sys.stderr.write(f"reenact.deploy: {exc}; start Docker or set DOCKER_HOST\n")
        return EXIT_NO_ENGINE
    except tool.DeployError as exc:
        sys.stderr.write(f"reenact.deploy: {exc}\n")
        return 1


if __name__ == "__main__":
    sys.exit(main())

"""Wire up the Triton 2.51.0 binaries shipped in PyPI wheels so they run on this machine.

The ``nvidia-pytriton==0.7.0`` wheel carries ``tritonserver`` with only the python backend; the
``tritonclient==2.51.0`` wheel carries ``perf_analyzer``. Neither runs as installed:

- ``--backend-directory`` must hold ``python/`` with ``libtriton_python.so``,
  ``triton_python_backend_utils.py`` and a ``triton_python_backend_stub`` built for the
  interpreter's Python version (a symlink keeps the stub's RPATH valid);
- the stub must load the same libpython as the virtualenv (``LD_LIBRARY_PATH`` = Python's LIBDIR)
  and finds the virtualenv's packages through ``PATH`` (``PYTHONPATH`` is ignored);
- ``perf_analyzer`` needs ``libb64.so.0d`` and ``libcudart.so.12``, which the pytriton wheel ships
  under mangled names in ``nvidia_pytriton.libs/``.

:func:`prepare` makes a runtime folder inside the virtualenv with those links and a
``perf_analyzer`` wrapper. It is idempotent; ``python -m reenact.serving.runtime`` runs it.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import stat
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

SERVER_ENV = {
    "OMP_WAIT_POLICY": "PASSIVE",
    "MALLOC_MMAP_THRESHOLD_": "33554432",
    "MALLOC_TRIM_THRESHOLD_": "1073741824",
    "MALLOC_TOP_PAD_": "67108864",
}
"""Set for the server unless the caller's environment says otherwise (both are read when a
process starts; the Docker image sets the same):

- ``OMP_WAIT_POLICY=PASSIVE``: each python-backend model is its own process with its own OpenMP
  pool, and OpenMP's default spin-waiting makes those pools burn the cores the other processes
  need (two face_reenactment instances on 2 cores: 2.0 instead of 6.3-6.6 requests/s);
- the ``MALLOC_*`` settings keep glibc from handing the reenactor's large per-request buffers
  (tens of MB) back to the kernel after every request and faulting them in again: about 8,000
  page faults and 10-20 % of the reenactor's time per request. The price is that each process
  keeps its peak heap (it is reused by the next request).
"""


class RuntimeNotFoundError(RuntimeError):
    """A Triton binary or library is missing from the installed wheels."""


@dataclass(frozen=True)
class TritonRuntime:
    """Paths of a prepared local Triton runtime."""

    root: Path
    server_bin: Path
    backend_dir: Path
    lib_dir: Path
    perf_analyzer: Path

    def server_env(self, base: dict[str, str] | None = None) -> dict[str, str]:
        """Environment for ``tritonserver``: the venv first on PATH, the venv's libpython found,
        and :data:`SERVER_ENV` where ``base`` (default: this process's environment) lacks it."""
        env = dict(os.environ if base is None else base)
        venv_bin = str(Path(sys.executable).parent)
        env["PATH"] = os.pathsep.join([venv_bin, env.get("PATH", "")])
        libdirs = [sysconfig.get_config_var("LIBDIR") or "", env.get("LD_LIBRARY_PATH", "")]
        env["LD_LIBRARY_PATH"] = os.pathsep.join(d for d in libdirs if d)
        for key, value in SERVER_ENV.items():
            env.setdefault(key, value)
        return env


def _package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeNotFoundError(f"package {name!r} is not installed: run `make setup`")
    return Path(next(iter(spec.submodule_search_locations)))


def _single(folder: Path, pattern: str) -> Path:
    found = sorted(folder.glob(pattern))
    if not found:
        raise RuntimeNotFoundError(f"no {pattern} in {folder}")
    return found[0]


def _link(target: Path, link: Path) -> None:
    if link.is_symlink() and link.resolve() == target.resolve():
        return
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to(target)


def _write_if_changed(path: Path, text: str, mode: int) -> None:
    if not path.exists() or path.read_text() != text:
        path.write_text(text)
    path.chmod(mode)


def default_root() -> Path:
    """The runtime folder of the running virtualenv."""
    return Path(sys.prefix) / "share" / "reenact-triton"


def prepare(root: Path | None = None) -> TritonRuntime:
    """Create (or check) the runtime folder; return its paths. Idempotent."""
    root = root or default_root()
    triton_home = _package_dir("pytriton") / "tritonserver"
    wheel_libs = triton_home.parent.parent / "nvidia_pytriton.libs"
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    stub = triton_home / "python_backend_stubs" / version / "triton_python_backend_stub"
    if not stub.is_file():
        raise RuntimeNotFoundError(f"the pytriton wheel has no python backend stub for {version}")

    python_backend = root / "backends" / "python"
    lib_dir = root / "lib"
    bin_dir = root / "bin"
    for folder in (python_backend, lib_dir, bin_dir):
        folder.mkdir(parents=True, exist_ok=True)
    for name in ("libtriton_python.so", "triton_python_backend_utils.py"):
        _link(triton_home / "backends" / "python" / name, python_backend / name)
    _link(stub, python_backend / "triton_python_backend_stub")
    _link(_single(wheel_libs, "libb64-*.so.0d"), lib_dir / "libb64.so.0d")
    _link(_single(wheel_libs, "libcudart-*.so.12*"), lib_dir / "libcudart.so.12")

    perf_bin = Path(sys.executable).parent / "perf_analyzer"
    if not perf_bin.is_file():
        raise RuntimeNotFoundError("perf_analyzer missing: install tritonclient==2.51.0")
    wrapper = bin_dir / "perf_analyzer"
    script = (
        "#!/bin/sh\n"
        "# perf_analyzer 2.51.0 from the tritonclient wheel, with its libraries found.\n"
        f'LD_LIBRARY_PATH="{lib_dir}${{LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}}" '
        f'exec "{perf_bin}" "$@"\n'
    )
    _write_if_changed(wrapper, script, stat.S_IRWXU | stat.S_IRGRP | stat.S_IXGRP)
    return TritonRuntime(
        root=root,
        server_bin=triton_home / "bin" / "tritonserver",
        backend_dir=root / "backends",
        lib_dir=lib_dir,
        perf_analyzer=wrapper,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=None, help="runtime folder (default: in venv)")
    args = parser.parse_args(argv)
    runtime = prepare(args.root)
    sys.stdout.write(
        f"tritonserver:  {runtime.server_bin}\n"
        f"backends:      {runtime.backend_dir}\n"
        f"perf_analyzer: {runtime.perf_analyzer}\n"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

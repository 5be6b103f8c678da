"""Obtain the ICT-FaceKit morphable model at set-up: download, verify, convert once, cache.

    python -m export.fetch_ict [--archive PATH] [--sha256 HEX] [--url URL] [--out DIR]

Run by ``make setup``. When ``$REENACT_ICT_DIR`` is set it must hold ``ict_facekit.npz`` and
nothing is fetched; else a model already in ``build/assets/ict-facekit`` is kept. Otherwise the
upstream repository ICT-VGL/ICT-FaceKit at the pinned commit :data:`UPSTREAM_COMMIT` is downloaded
as a GitHub archive (about 200 MB; ``--url`` / ``$REENACT_ICT_URL`` point elsewhere) into
``build/downloads``, or read from ``--archive`` / ``$REENACT_ICT_ARCHIVE`` (a ``.zip`` or
``.tar.gz`` of that commit downloaded elsewhere, for machines without network access). Only its
``LICENSE`` and ``FaceXModel/`` files (about 470 MB of OBJ text) are extracted, into a work folder
beside the destination; they are converted with :mod:`export.convert_ict`, and the npz with the
LICENSE beside it is moved into place. The work folder is always removed; so is the downloaded
archive, once the model is in place (``--keep-archive`` keeps it).

Verification, before anything is cached:

- the archive's SHA-256, when one is known (``--sha256`` / ``$REENACT_ICT_SHA256``, or
  :data:`ARCHIVE_SHA256`). GitHub generates archives on request and does not promise the same
  bytes forever, so none is recorded by default;
- the SHA-256 of the upstream files this project holds copies of (:data:`UPSTREAM_FILE_SHA256`);
- the SHA-256 of every array of the converted model that comes from upstream data
  (:data:`MODEL_ARRAY_SHA256`, see :func:`array_sha256`): they cover all 158 OBJ files through the
  converter, whose float16 rounding is exact and the same on every machine. The npz file itself
  has no stable SHA-256 (its zip entries carry the time of writing).
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import http.client
import os
import re
import shutil
import sys
import tarfile
import urllib.error
import urllib.request
import zipfile
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import BinaryIO

import numpy as np

from export.convert_ict import convert
from reenact.assets import ICT_ENV, ICT_NPZ, build_dir, ict_build_dir

UPSTREAM_REPO = "ICT-VGL/ICT-FaceKit"
UPSTREAM_COMMIT = "da5f95a607f5e6b37755b38d3385d7f2853732e5"
DEFAULT_URL = f"https://github.com/{UPSTREAM_REPO}/archive/{UPSTREAM_COMMIT}.zip"
URL_ENV = "REENACT_ICT_URL"
ARCHIVE_ENV = "REENACT_ICT_ARCHIVE"
SHA256_ENV = "REENACT_ICT_SHA256"

# SHA-256 of the GitHub archive at UPSTREAM_COMMIT, or None: not recorded, because GitHub makes
# archives on request without promising stable bytes; the contents are verified instead.
ARCHIVE_SHA256: str | None = None

# Upstream files at UPSTREAM_COMMIT, paths inside the archive's top folder.
UPSTREAM_FILE_SHA256 = {
    "LICENSE": "b20a78d8fc51657e14f3e00c8abb538d786ad00aa63210328c22565e583167e1",
    "FaceXModel/generic_neutral_mesh.obj": (
        "eedbc2576d8e5ea57f55255b8f98263213a1efb5431d8bfceed1d7aef10271f9"
    ),
    "FaceXModel/jawOpen.obj": "8d84355e10f48b05550980cee385bcd426f4797090da76a20de0535bb2f99f4a",
    "FaceXModel/vertex_indices.json": (
        "4f9b35306299980dd46bee4a6b79bb95dfae1953693b74b35a64f7febfd081a5"
    ),
}

# array_sha256 of each array of the converted model that comes from upstream data.
MODEL_ARRAY_SHA256 = {
    "neutral": "1ded4fac4a9290de8f2e86dbd7ddc39c5e2476a88a8ea2c9c0b3b01dd064950e",
    "identity_basis": "88749025607d5733d9a0c40aa59bf50e652a0f1981b5036327b4e2349d16a24c",
    "expression_basis": "a003c7a7c0548db814ddbcaf5eac5146c7b562d9b0c27911007bb369c1c917ac",
    "expression_names": "c4a71504484debeff17c3cde817bae8b5d4e852f21511e2676fef7a209e0c427",
    "triangles": "0926b367215e494a1341a3dc25629eb5199c00dc3f48c0358e4374fd63deaedc",
    "triangle_material": "4739a4442d3c1b3f7822285f9f38e0b4a35374f6b957d1e214dcbc1e2af868b7",
    "landmarks_68": "4e5043457a5b374f5dbb8c8a5dcec50066f928becf17eb5e5d0542255dc98234",
    "fitting_vertices": "87c486100f70d6ce65f91068ac2261c947dd478b02ff31d32d9356a68a0957df",
    "rigid_vertices": "158347851263ea17a36b8003de1e1c13fc09a0830b1890a55aa550bcad2730d7",
}

FACEX = "FaceXModel"
LICENSE = "LICENSE"
REQUIRED_FILES = (LICENSE, f"{FACEX}/generic_neutral_mesh.obj", f"{FACEX}/vertex_indices.json")
WORK_PREFIX = ".ict-facekit-work-"
_SAFE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
_MB = 1 << 20


@dataclass(frozen=True)
class UpstreamPin:
    """What to download and what the result must hash to."""

    url: str = DEFAULT_URL
    archive_sha256: str | None = ARCHIVE_SHA256  # None: the archive's bytes are not checked
    file_sha256: Mapping[str, str] = field(default_factory=lambda: dict(UPSTREAM_FILE_SHA256))
    array_sha256: Mapping[str, str] = field(default_factory=lambda: dict(MODEL_ARRAY_SHA256))


@dataclass(frozen=True)
class FetchConfig:
    """Where the model goes and where the archive comes from."""

    out_dir: Path  # receives ict_facekit.npz and LICENSE
    download_dir: Path  # the archive is downloaded here (resumable ``.part`` file first)
    pin: UpstreamPin = field(default_factory=UpstreamPin)
    archive: Path | None = None  # a local archive instead of downloading
    keep_archive: bool = False  # keep a downloaded archive once the model is in place
    timeout_s: float = 60.0  # connect and per-read timeout of the download
    max_archive_bytes: int = 2 << 30  # refuse larger downloads
    max_extracted_bytes: int = 2 << 30  # refuse archives whose wanted files unpack larger


class FetchError(RuntimeError):
    """The model could not be obtained; the message says what to do."""


class ChecksumError(FetchError):
    """Something obtained does not match its recorded SHA-256; nothing was cached."""


class _RangeNotSatisfiable(FetchError):
    """The server refused to resume from the ``.part`` file's size."""


def offline_help(url: str) -> str:
    return (
        f"Without network access: download {url} on another machine, then run "
        "`python -m export.fetch_ict --archive PATH [--sha256 HEX]` (or "
        f"`{ARCHIVE_ENV}=PATH make setup`), or set {ICT_ENV} to a folder holding {ICT_NPZ} "
        "and its LICENSE (docs/assets.md)."
    )


def say(message: str) -> None:
    """One progress line of set-up."""
    print(f"ict-facekit: {message}", flush=True)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(_MB):
            digest.update(chunk)
    return digest.hexdigest()


def array_sha256(array: np.ndarray) -> str:
    """SHA-256 of ``f"{dtype.str} {shape}\\n"`` followed by the little-endian C-order bytes."""
    canonical = np.ascontiguousarray(array)
    canonical = canonical.astype(canonical.dtype.newbyteorder("<"), copy=False)
    digest = hashlib.sha256(f"{canonical.dtype.str} {canonical.shape}\n".encode())
    digest.update(canonical.tobytes())
    return digest.hexdigest()


def _megabytes(count: int) -> str:
    return f"{count / _MB:.1f} MB"


def _open_url(url: str, offset: int, timeout_s: float) -> http.client.HTTPResponse:
    """The response to GET ``url`` (from byte ``offset`` when > 0; the server may ignore it)."""
    headers = {"User-Agent": "reenact-setup (python urllib)"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        request = urllib.request.Request(url, headers=headers)
        return urllib.request.urlopen(request, timeout=timeout_s)
    except urllib.error.HTTPError as error:
        error.close()
        if error.code == 416 and offset:
            raise _RangeNotSatisfiable(f"{url} cannot resume at byte {offset}") from error
        message = f"{url} answered HTTP {error.code} {error.reason}. {offline_help(url)}"
        raise FetchError(message) from error
    except (urllib.error.URLError, OSError, http.client.HTTPException) as error:
        raise FetchError(f"could not download {url}: {error}. {offline_help(url)}") from error


def _resumed_at(response: http.client.HTTPResponse, offset: int) -> int:
    """Where the body starts in the whole file: ``offset`` for a matching 206, else 0."""
    content_range = response.headers.get("Content-Range", "")
    if offset and response.status == 206 and content_range.startswith(f"bytes {offset}-"):
        return offset
    return 0


def _copy_body(
    response: BinaryIO, stream: BinaryIO, start: int, total: int | None, cap: int
) -> int:
    """Stream the body into ``stream`` (which already holds ``start`` bytes), a progress line
    every 10 % (every 32 MB without a size); the file's size when done."""
    written, next_report = start, start
    step = max(total // 10, _MB) if total else 32 * _MB
    while chunk := response.read(_MB):
        written += len(chunk)
        if written > cap:
            raise FetchError(f"the download passed {_megabytes(cap)}: refused, not an archive")
        stream.write(chunk)
        if written >= next_report + step:
            next_report = written
            of_total = f" of {_megabytes(total)}" if total else ""
            say(f"  {_megabytes(written)}{of_total}")
    return written


def download(url: str, dest: Path, timeout_s: float = 60.0, max_bytes: int = 2 << 30) -> Path:
    """Download ``url`` to ``dest`` through ``dest.part``; an interrupted download resumes from
    the ``.part`` file when the server honours ``Range``, else starts again. Returns ``dest``."""
    part = dest.with_name(dest.name + ".part")
    dest.parent.mkdir(parents=True, exist_ok=True)
    offset = part.stat().st_size if part.is_file() else 0
    try:
        response = _open_url(url, offset, timeout_s)
    except _RangeNotSatisfiable:
        part.unlink()
        response = _open_url(url, 0, timeout_s)
    with response:
        start = _resumed_at(response, offset)
        length = response.headers.get("Content-Length")
        total = start + int(length) if length and length.isdigit() else None
        size = _megabytes(total) if total else "size not announced"
        resume = f", resuming at {_megabytes(start)}" if start else ""
        say(f"downloading {url}")
        say(f"  to {part} ({size}{resume})")
        try:
            with part.open("r+b" if start else "wb") as stream:
                stream.seek(start)
                stream.truncate()
                written = _copy_body(response, stream, start, total, max_bytes)
        except FetchError:
            part.unlink(missing_ok=True)  # too large: nothing worth resuming
            raise
        except (OSError, http.client.HTTPException) as error:
            raise FetchError(
                f"the download of {url} stopped ({error}); run the same command again to resume "
                f"from {part}. {offline_help(url)}"
            ) from error
    if total is not None and written != total:
        raise FetchError(
            f"the download of {url} ended at {_megabytes(written)} of {size}; run the same "
            f"command again to resume from {part}"
        )
    part.replace(dest)
    say(f"downloaded {_megabytes(written)} to {dest}")
    return dest


def _wanted_path(member: str) -> str | None:
    """``top/LICENSE`` -> ``LICENSE``, ``top/FaceXModel/<name>`` -> ``FaceXModel/<name>``; any
    other member (other folders, nested or unsafe names) -> None."""
    parts = PurePosixPath(member).parts
    if len(parts) == 2 and parts[1] == LICENSE:
        return LICENSE
    if len(parts) == 3 and parts[1] == FACEX and _SAFE_NAME.fullmatch(parts[2]):
        return f"{FACEX}/{parts[2]}"
    return None


def _archive_members(archive: Path) -> Iterator[tuple[str, int, BinaryIO]]:
    """(name, size, stream) of every regular file of a zip or tar(.gz) archive."""
    with archive.open("rb") as stream:
        magic = stream.read(4)
    if magic.startswith(b"PK\x03\x04"):
        with zipfile.ZipFile(archive) as bundle:
            for info in bundle.infolist():
                if not info.is_dir():
                    with bundle.open(info) as member:
                        yield info.filename, info.file_size, member
    elif magic.startswith(b"\x1f\x8b") or tarfile.is_tarfile(archive):
        with tarfile.open(archive, mode="r:*") as bundle:
            for info in bundle:
                if info.isreg() and (member := bundle.extractfile(info)) is not None:
                    with member:
                        yield info.name, info.size, member
    else:
        raise FetchError(f"{archive} is neither a zip nor a tar.gz archive")


def extract(archive: Path, dest: Path, max_bytes: int = 2 << 30) -> Path:
    """Write the archive's ``LICENSE`` and ``FaceXModel/*`` files under ``dest``; ``dest``."""
    unpacked = 0
    (dest / FACEX).mkdir(parents=True, exist_ok=True)
    try:
        for name, size, member in _archive_members(archive):
            wanted = _wanted_path(name)
            if wanted is None:
                continue
            unpacked += size
            if unpacked > max_bytes:
                raise FetchError(f"{archive} unpacks to more than {_megabytes(max_bytes)}")
            with (dest / wanted).open("wb") as out:
                shutil.copyfileobj(member, out, _MB)
    except (zipfile.BadZipFile, tarfile.TarError, gzip.BadGzipFile, zlib.error, EOFError) as error:
        raise ChecksumError(f"{archive} is damaged ({error}); nothing was cached") from error
    missing = [name for name in REQUIRED_FILES if not (dest / name).is_file()]
    if missing:
        raise FetchError(
            f"{archive} lacks {', '.join(missing)}: expected the upstream layout "
            f"<top folder>/{LICENSE} and <top folder>/{FACEX}/ of {UPSTREAM_REPO}"
        )
    return dest


def verify_files(root: Path, expected: Mapping[str, str]) -> None:
    """ChecksumError unless every ``root/<path>`` of ``expected`` has its SHA-256."""
    wrong = [path for path, digest in expected.items() if _sha256_or_none(root / path) != digest]
    if wrong:
        raise ChecksumError(
            f"upstream file(s) {', '.join(wrong)} do not match their recorded SHA-256 "
            f"(commit {UPSTREAM_COMMIT}); nothing was cached"
        )


def _sha256_or_none(path: Path) -> str | None:
    return sha256_file(path) if path.is_file() else None


def verify_arrays(npz: Path, expected: Mapping[str, str]) -> None:
    """ChecksumError unless every array named in ``expected`` has its :func:`array_sha256`."""
    with np.load(npz, allow_pickle=False) as arrays:
        wrong = [k for k, d in expected.items() if k not in arrays or array_sha256(arrays[k]) != d]
    if wrong:
        raise ChecksumError(
            f"the converted model's {', '.join(wrong)} do not match the recorded SHA-256 of the "
            f"ICT-FaceKit model at commit {UPSTREAM_COMMIT}: the archive holds other data; "
            "nothing was cached"
        )


def _remove_stale_work_dirs(parent: Path) -> None:
    """Remove work folders left by fetches that were killed (their process is gone)."""
    for folder in parent.glob(f"{WORK_PREFIX}*"):
        pid = folder.name[len(WORK_PREFIX) :]
        if pid.isdigit() and not _process_alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def downloaded_archive_path(config: FetchConfig) -> Path:
    """Where the archive of ``config.pin.url`` is downloaded to."""
    name = PurePosixPath(config.pin.url.split("?")[0]).name or "archive"
    return config.download_dir / f"ICT-FaceKit-{name}"


def _obtain_archive(config: FetchConfig) -> Path:
    """The user's archive, or a fresh download; checked against the archive SHA-256 if known."""
    pin = config.pin
    if config.archive is not None:
        if not config.archive.is_file():
            raise FetchError(f"archive {config.archive} does not exist")
        archive = config.archive
        say(f"using the local archive {archive} ({_megabytes(archive.stat().st_size)})")
    else:
        archive = downloaded_archive_path(config)
        if archive.is_file():
            say(f"using the earlier download {archive}")
        else:
            download(pin.url, archive, config.timeout_s, config.max_archive_bytes)
    if pin.archive_sha256 is not None:
        actual = sha256_file(archive)
        if actual != pin.archive_sha256.lower():
            if config.archive is None:
                archive.unlink()
            raise ChecksumError(
                f"archive SHA-256 {actual} differs from the expected {pin.archive_sha256}: "
                "refused, nothing was cached" + ("" if config.archive else " (download removed)")
            )
        say(f"archive SHA-256 verified ({actual})")
    return archive


def _convert_and_install(root: Path, config: FetchConfig) -> Path:
    """Verify the extracted files, convert, verify the model, then move npz and LICENSE in."""
    verify_files(root, config.pin.file_sha256)
    say(f"converting {root / FACEX} (export/convert_ict.py)")
    try:
        npz = convert(root / FACEX, root / ICT_NPZ)
    except (OSError, ValueError, KeyError) as error:
        raise ChecksumError(
            f"the archive's {FACEX}/ is not the upstream model at commit {UPSTREAM_COMMIT} "
            f"({error}); nothing was cached"
        ) from error
    verify_arrays(npz, config.pin.array_sha256)
    config.out_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(root / LICENSE, root / f"{LICENSE}.copy")
    (root / f"{LICENSE}.copy").replace(config.out_dir / LICENSE)
    target = config.out_dir / ICT_NPZ
    npz.replace(target)  # last: a model in place means the whole fetch succeeded
    return target


def fetch(config: FetchConfig) -> Path:
    """``config.out_dir/ict_facekit.npz``, obtained, verified and converted when not there."""
    target = config.out_dir / ICT_NPZ
    if target.is_file():
        say(f"model found: {target}")
        return target
    parent = config.out_dir.parent
    parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_work_dirs(parent)
    say(f"no model in {config.out_dir}: fetching {UPSTREAM_REPO} at {UPSTREAM_COMMIT[:12]}")
    archive = _obtain_archive(config)
    work = parent / f"{WORK_PREFIX}{os.getpid()}"
    shutil.rmtree(work, ignore_errors=True)
    try:
        say(f"extracting {LICENSE} and {FACEX}/ to {work}")
        _convert_and_install(extract(archive, work, config.max_extracted_bytes), config)
    except ChecksumError:
        if config.archive is None:
            archive.unlink(missing_ok=True)  # a bad download must not be reused
        raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    say(f"model ready: {target} (LICENSE beside it); extracted files removed")
    if config.archive is None and not config.keep_archive:
        archive.unlink()
        say(f"removed the downloaded archive {archive}")
    return target


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    env = os.environ.get
    parser.add_argument(
        "--archive",
        type=Path,
        default=Path(env(ARCHIVE_ENV)) if env(ARCHIVE_ENV) else None,
        help=f"a local .zip/.tar.gz of {UPSTREAM_REPO} at {UPSTREAM_COMMIT[:7]} (${ARCHIVE_ENV})",
    )
    parser.add_argument(
        "--sha256",
        default=env(SHA256_ENV) or ARCHIVE_SHA256,
        help=f"the archive's expected SHA-256 (${SHA256_ENV})",
    )
    parser.add_argument("--url", default=env(URL_ENV) or DEFAULT_URL, help=f"(${URL_ENV})")
    parser.add_argument("--out", type=Path, default=None, help=f"default: {ict_build_dir()}")
    parser.add_argument("--keep-archive", action="store_true", help="keep the downloaded archive")
    parser.add_argument("--timeout", type=float, default=60.0, help="network timeout, seconds")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    ict_env = os.environ.get(ICT_ENV)
    if args.out is None and ict_env:
        given = Path(ict_env) / ICT_NPZ
        if given.is_file():
            say(f"model found: {given} (${ICT_ENV})")
            return 0
        print(
            f"ict-facekit: ${ICT_ENV}={ict_env} holds no {ICT_NPZ}. Unset it to let set-up fetch "
            f"the model into {ict_build_dir()}, or fill that folder with "
            f"`python -m export.fetch_ict --out {ict_env}`.",
            file=sys.stderr,
        )
        return 2
    pin = UpstreamPin(url=args.url, archive_sha256=args.sha256)
    config = FetchConfig(
        out_dir=args.out or ict_build_dir(),
        download_dir=build_dir() / "downloads",
        pin=pin,
        archive=args.archive,
        keep_archive=args.keep_archive,
        timeout_s=args.timeout,
    )
    try:
        fetch(config)
    except FetchError as error:
        print(f"ict-facekit: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Set-up's ICT-FaceKit fetch end to end against a local HTTP server: download (and resume),
checksum refusals, extraction, conversion, cache reuse, offline archives, and the recorded
checksums against the model available on this machine."""

from __future__ import annotations

import hashlib
import io
import socket
import tarfile
import threading
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from export import fetch_ict
from export.convert_ict import NEUTRAL_OBJ, convert, read_obj
from export.fetch_ict import (
    ChecksumError,
    FetchConfig,
    FetchError,
    UpstreamPin,
    array_sha256,
    fetch,
    main,
)
from reenact.assets import ICT_ENV, ICT_NPZ, ict_dir_candidates, ict_model_path
from tests.unit.test_convert_ict import write_synthetic_facex

TOP = f"ICT-FaceKit-{fetch_ict.UPSTREAM_COMMIT}"
LICENSE_TEXT = b"MIT License\n\nCopyright (c) 2020 USC Institute for Creative Technologies\n"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def digest(array: np.ndarray) -> str:
    """The documented array digest: "<dtype.str> <shape>\\n" + little-endian C-order bytes."""
    canonical = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<"))
    return sha256(f"{canonical.dtype.str} {canonical.shape}\n".encode() + canonical.tobytes())


@dataclass
class Upstream:
    """A small upstream repository: its files by archive path, and the model they convert to."""

    files: dict[str, bytes]
    reference: dict[str, np.ndarray]  # arrays of convert() run directly on FaceXModel/
    pin_files: dict[str, str] = field(default_factory=dict)
    pin_arrays: dict[str, str] = field(default_factory=dict)

    def pin(self, url: str = "", archive_sha256: str | None = None) -> UpstreamPin:
        return UpstreamPin(url, archive_sha256, self.pin_files, self.pin_arrays)

    def zip_bytes(self, **replaced: bytes) -> bytes:
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as bundle:
            bundle.writestr(f"{TOP}/", b"")
            for path, data in {**self.files, **replaced}.items():
                bundle.writestr(f"{TOP}/{path}", data)
            bundle.writestr(f"{TOP}/FaceXModel/../../escape.txt", b"outside")
        return buffer.getvalue()

    def tar_gz_bytes(self) -> bytes:
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w:gz") as bundle:
            for path, data in self.files.items():
                info = tarfile.TarInfo(f"{TOP}/{path}")
                info.size = len(data)
                bundle.addfile(info, io.BytesIO(data))
        return buffer.getvalue()


@pytest.fixture(scope="module")
def upstream(tmp_path_factory) -> Upstream:
    root = tmp_path_factory.mktemp("upstream")
    write_synthetic_facex(root / "FaceXModel", seed=3)
    (root / "LICENSE").write_bytes(LICENSE_TEXT)
    files = {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}
    files["README.md"] = b"# ICT FaceKit\n"  # other upstream files are not extracted
    files["Blender/Scripts/ICTFaceKit.py"] = b"print('blender')\n"
    with np.load(convert(root / "FaceXModel", root / "reference.npz"), allow_pickle=False) as z:
        reference = {k: z[k] for k in z.files}
    pinned = ("LICENSE", f"FaceXModel/{NEUTRAL_OBJ}", "FaceXModel/vertex_indices.json")
    pin_files = {p: sha256(files[p]) for p in pinned}
    pin_arrays = {k: digest(v) for k, v in reference.items() if k != "material_names"}
    return Upstream(files, reference, pin_files, pin_arrays)


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        owner: ArchiveServer = self.server.owner  # type: ignore[attr-defined]
        requested = self.headers.get("Range")
        owner.requests.append((self.path, requested))
        start = 0
        if requested and owner.honour_range:
            start = int(requested.removeprefix("bytes=").rstrip("-"))
            self.send_response(206)
            end = len(owner.payload) - 1
            self.send_header("Content-Range", f"bytes {start}-{end}/{len(owner.payload)}")
        else:
            self.send_response(200)
        body = owner.payload[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        owner.bytes_sent += len(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@dataclass
class ArchiveServer:
    """Serves ``payload`` at every path; records (path, Range header) of each request."""

    port: int = 0
    payload: bytes = b""
    honour_range: bool = True
    requests: list[tuple[str, str | None]] = field(default_factory=list)
    bytes_sent: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/ICT-VGL/ICT-FaceKit/archive/{fetch_ict.UPSTREAM_COMMIT}.zip"


@pytest.fixture
def server() -> Iterator[ArchiveServer]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    owner = ArchiveServer(port=httpd.server_address[1])
    httpd.owner = owner  # type: ignore[attr-defined]
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield owner
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=5)


def config_for(tmp_path: Path, pin: UpstreamPin, archive: Path | None = None) -> FetchConfig:
    return FetchConfig(
        out_dir=tmp_path / "assets" / "ict-facekit",
        download_dir=tmp_path / "downloads",
        pin=pin,
        archive=archive,
        timeout_s=10.0,
    )


def assert_nothing_cached(tmp_path: Path) -> None:
    """No model, no LICENSE, no extracted file, no download left behind."""
    left = [p for p in (tmp_path / "assets").rglob("*") if p.is_file()]
    downloads = tmp_path / "downloads"
    left += [p for p in downloads.rglob("*") if p.is_file()] if downloads.exists() else []
    assert left == []


def test_download_verify_convert_then_reuse(upstream, server, tmp_path, capsys):
    server.payload = upstream.zip_bytes()
    config = config_for(tmp_path, upstream.pin(server.url, sha256(server.payload)))
    path = fetch(config)
    assert path == config.out_dir / ICT_NPZ
    with np.load(path, allow_pickle=False) as model:
        assert sorted(model.files) == sorted(upstream.reference)
        for key, expected in upstream.reference.items():
            assert np.array_equal(model[key], expected), key
    assert (config.out_dir / "LICENSE").read_bytes() == LICENSE_TEXT
    assert sorted(p.name for p in config.out_dir.iterdir()) == ["LICENSE", ICT_NPZ]
    # the extracted OBJ text and the download are gone; nothing escaped the work folder
    assert list(tmp_path.joinpath("assets").rglob("*.obj")) == []
    assert list(config.download_dir.iterdir()) == []
    assert list(tmp_path.rglob("escape.txt")) == []
    said = capsys.readouterr().out
    assert server.url in said and str(config.download_dir) in said
    assert f"{len(server.payload) / 2**20:.1f} MB" in said

    mtime = path.stat().st_mtime_ns
    assert fetch(config) == path  # cache reuse: no second download
    assert len(server.requests) == 1
    assert path.stat().st_mtime_ns == mtime
    assert "model found" in capsys.readouterr().out


@pytest.mark.parametrize("honour_range", [True, False])
def test_interrupted_download_resumes_or_restarts(upstream, server, tmp_path, honour_range):
    server.payload = upstream.zip_bytes()
    server.honour_range = honour_range
    config = config_for(tmp_path, upstream.pin(server.url, sha256(server.payload)))
    half = len(server.payload) // 2
    part = fetch_ict.downloaded_archive_path(config).with_suffix(".zip.part")
    part.parent.mkdir(parents=True)
    part.write_bytes(server.payload[:half])
    assert fetch(config).is_file()
    assert server.requests[0][1] == f"bytes={half}-"
    served = len(server.payload) - half if honour_range else len(server.payload)
    assert server.bytes_sent == served


def test_corrupted_download_refused_by_archive_checksum(upstream, server, tmp_path):
    good = upstream.zip_bytes()
    flipped = bytearray(good)
    flipped[len(good) // 2] ^= 0xFF
    server.payload = bytes(flipped)
    config = config_for(tmp_path, upstream.pin(server.url, sha256(good)))
    with pytest.raises(ChecksumError, match=r"SHA-256 .* differs .* nothing was cached"):
        fetch(config)
    assert_nothing_cached(tmp_path)


def test_truncated_download_refused_without_archive_checksum(upstream, server, tmp_path):
    server.payload = upstream.zip_bytes()[:-200]  # the central directory is cut off
    with pytest.raises(ChecksumError, match="damaged"):
        fetch(config_for(tmp_path, upstream.pin(server.url)))
    assert_nothing_cached(tmp_path)


def test_tampered_blendshape_refused_by_the_model_check(upstream, server, tmp_path):
    original = upstream.files["FaceXModel/identity001.obj"].decode()
    first_vertex = next(line for line in original.splitlines() if line.startswith("v "))
    tampered = original.replace(first_vertex, "v 9.0 9.0 9.0", 1).encode()
    server.payload = upstream.zip_bytes(**{"FaceXModel/identity001.obj": tampered})
    with pytest.raises(ChecksumError, match="identity_basis") as refused:
        fetch(config_for(tmp_path, upstream.pin(server.url)))
    assert "expression_basis" not in str(refused.value)
    assert_nothing_cached(tmp_path)


def test_tampered_license_refused(upstream, tmp_path):
    archive = tmp_path / "upstream.zip"
    archive.write_bytes(upstream.zip_bytes(LICENSE=b"All rights reserved\n"))
    with pytest.raises(ChecksumError, match="LICENSE"):
        fetch(config_for(tmp_path, upstream.pin(), archive=archive))
    assert_nothing_cached(tmp_path)
    assert archive.is_file()  # a file the user gave is never deleted


def test_offline_tar_gz_archive_through_the_command_line(upstream, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(fetch_ict, "UPSTREAM_FILE_SHA256", upstream.pin_files)
    monkeypatch.setattr(fetch_ict, "MODEL_ARRAY_SHA256", upstream.pin_arrays)
    monkeypatch.delenv(ICT_ENV, raising=False)
    archive = tmp_path / "ICT-FaceKit.tar.gz"
    archive.write_bytes(upstream.tar_gz_bytes())
    out = tmp_path / "model"
    argv = ["--archive", str(archive), "--out", str(out), "--url", "http://127.0.0.1:9/unused"]
    assert main([*argv, "--sha256", "0" * 64]) == 1
    assert "differs" in capsys.readouterr().err and not out.exists()
    assert main([*argv, "--sha256", sha256(archive.read_bytes())]) == 0
    with np.load(out / ICT_NPZ, allow_pickle=False) as model:
        assert np.array_equal(model["identity_basis"], upstream.reference["identity_basis"])
    assert (out / "LICENSE").read_bytes() == LICENSE_TEXT and archive.is_file()


def test_unreachable_server_explains_the_offline_way(upstream, tmp_path):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    pin = upstream.pin(f"http://127.0.0.1:{port}/archive.zip")
    with pytest.raises(FetchError, match=f"--archive PATH.*{ICT_ENV}"):
        fetch(config_for(tmp_path, pin))
    assert_nothing_cached(tmp_path)


def test_command_line_keeps_to_REENACT_ICT_DIR(tmp_path, monkeypatch, capsys):
    given = tmp_path / "given"
    given.mkdir()
    monkeypatch.setenv(ICT_ENV, str(given))
    assert main(["--url", "http://127.0.0.1:9/unused"]) == 2  # set but empty: no silent fetch
    assert f"{ICT_ENV}={given} holds no {ICT_NPZ}" in capsys.readouterr().err
    (given / ICT_NPZ).write_bytes(b"a model")
    assert main(["--url", "http://127.0.0.1:9/unused"]) == 0
    assert "model found" in capsys.readouterr().out


def test_array_digest_is_byte_order_free_and_shape_bound():
    values = np.arange(6, dtype=">i4").reshape(2, 3)
    assert array_sha256(values) == digest(values.astype("<i4"))
    assert array_sha256(values) != array_sha256(values.reshape(3, 2))
    assert array_sha256(values) != array_sha256(values.astype("<i8"))


def test_recorded_checksums_match_the_model_on_this_machine():
    """The recorded digests against a real model folder ($REENACT_ICT_DIR with the upstream
    sample files, or set-up's converted model), through the converter's own OBJ reader."""
    try:
        model = ict_model_path()
    except FileNotFoundError:
        pytest.skip("no ICT-FaceKit model on this machine")
    with np.load(model, allow_pickle=False) as arrays:
        for key, expected in fetch_ict.MODEL_ARRAY_SHA256.items():
            assert digest(arrays[key]) == expected, key
    samples = next((d for d in ict_dir_candidates() if (d / NEUTRAL_OBJ).is_file()), None)
    if samples is None:
        pytest.skip("no model folder holds the upstream sample files")
    for path, expected in fetch_ict.UPSTREAM_FILE_SHA256.items():
        assert sha256((samples / Path(path).name).read_bytes()) == expected, path
    neutral = read_obj(samples / NEUTRAL_OBJ)
    recorded = fetch_ict.MODEL_ARRAY_SHA256
    assert digest(neutral.vertices.astype(np.float32)) == recorded["neutral"]
    assert digest(neutral.triangles) == recorded["triangles"]
    assert digest(neutral.triangle_group.astype(np.int8)) == recorded["triangle_material"]

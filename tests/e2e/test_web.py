"""The web page in a real browser: headless Chromium (Debian's ``chromium`` package) driven by
Playwright against the real gateway and a real tritonserver serving ``face_reenactment``.

Screenshots go to ``build/web-screenshots/``. The last test stops the server: keep it last.
"""

from __future__ import annotations

import hashlib
import http.client
import io
import json
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import skimage.data
from PIL import Image

from clients import sample_photos
from clients.web.app import GatewayConfig
from reenact.client import ReenactClient
from reenact.emotions import load_catalogue
from reenact.image_codec import DecodeLimits
from reenact.morphable import MorphableModel
from reenact.reenactment import ReenactmentConfig
from reenact.serving.server import ServerConfig, TritonServer
from tests.e2e.web_fixtures import (
    CHROMIUM_INSTALL,
    CHROMIUM_NAMES,
    GatewayThread,
    find_chromium,
    jpeg_bytes,
    screenshot_dir,
)

sync_api = pytest.importorskip(
    "playwright.sync_api",
    reason="the playwright Python package is missing: pip install -e '.[dev]' (make setup)",
)

pytestmark = pytest.mark.e2e

CANVAS_WIDTH, CANVAS_HEIGHT = 384, 512  # the face canvas every image has (README, "API")
GROUP_FACES = 6  # clients.sample_photos.group(): six people around a table
PHONE = {"width": 390, "height": 844}
# for a grid on a loaded 2-core machine; longer than the gateway's 60 s per request to Triton
WAIT_MS = 90_000


@pytest.fixture(scope="module")
def chromium_path() -> str:
    path = find_chromium()
    if path is None:
        pytest.skip(
            f"Chromium not found (looked for {', '.join(CHROMIUM_NAMES)} on PATH): "
            f"{CHROMIUM_INSTALL}"
        )
    return path


@pytest.fixture(scope="module")
def triton(tmp_path_factory) -> Iterator[TritonServer]:
    config = ServerConfig(models=("face_reenactment",), work_dir=tmp_path_factory.mktemp("web"))
    with TritonServer(config) as server:
        yield server


@pytest.fixture(scope="module")
def gateway(triton: TritonServer) -> Iterator[str]:
    with GatewayThread(GatewayConfig(triton_url=triton.grpc_url)) as thread:
        yield thread.url


def say_which_browser(config: pytest.Config, line: str) -> None:
    """Print ``line`` in pytest's output, past its capture of the tests' own output."""
    reporter = config.pluginmanager.getplugin("terminalreporter")
    capture = config.pluginmanager.getplugin("capturemanager")
    if reporter is None:
        return
    if capture is None:
        reporter.write_line(line)
        return
    with capture.global_and_fixture_disabled():
        reporter.write_line(line)


@pytest.fixture(scope="module")
def browser(chromium_path: str, request):
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path, headless=True)
        line = f"web tests: headless Chromium {browser.version} ({chromium_path}), Playwright"
        say_which_browser(request.config, line)
        (screenshot_dir() / "browser.txt").write_text(line + "\n")
        yield browser
        browser.close()


@pytest.fixture
def page(browser, gateway: str):
    """A fresh page at the gateway's URL, its settings loaded; fails the test if the page
    asked any other host for anything or threw an error."""
    context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    page = context.new_page()
    foreign: list[str] = []
    errors: list[str] = []
    page.on(
        "request", lambda r: None if r.url.startswith((gateway, "blob:")) else foreign.append(r.url)
    )
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(gateway)
    page.wait_for_selector("body[data-ready=true]")
    yield page
    context.close()
    assert not foreign, f"the page loaded from other hosts: {foreign}"
    assert not errors, f"the page threw: {errors}"


@pytest.fixture(scope="module")
def default_emotions() -> tuple[str, ...]:
    return load_catalogue(MorphableModel.load().expression_names).default


@pytest.fixture(scope="module")
def astronaut_jpeg() -> bytes:
    return jpeg_bytes(skimage.data.astronaut())


@pytest.fixture(scope="module")
def group_jpeg() -> bytes:
    return jpeg_bytes(sample_photos.group())


def query(url: str) -> dict[str, list[str]]:
    return urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)


def asks(url: str, path: str, **values: str) -> bool:
    """Whether ``url`` is a request to ``path`` with these single query values."""
    found = query(url)
    return urllib.parse.urlsplit(url).path == path and all(
        found.get(name) == [value] for name, value in values.items()
    )


def upload(page, data: bytes, name: str = "photo.jpg", mime: str = "image/jpeg") -> None:
    page.set_input_files("#photo-file", files=[{"name": name, "mimeType": mime, "buffer": data}])


def wait_for_grid(page, count: int, generation: int | None = None) -> None:
    """Until ``count`` tiles hold an image of the latest request (or of ``generation``); on
    time-out, fails saying what the page shows."""
    try:
        page.wait_for_function(
            """([count, generation]) => {
                const tiles = [...document.querySelectorAll('#grid li')];
                const latest = generation ?? Math.max(0, ...tiles.map(t => +t.dataset.generation));
                return tiles.length === count && tiles.every(
                    t => t.dataset.state === 'ready' && +t.dataset.generation === latest);
            }""",
            arg=[count, generation],
            timeout=WAIT_MS,
        )
    except sync_api.TimeoutError:
        shown = page.evaluate(
            """async () => ({
                health: await (await fetch('/api/health')).text(),
                tiles: [...document.querySelectorAll('#grid li')].map(
                    t => `${t.dataset.emotion}:${t.dataset.state}:${t.dataset.generation}`),
                progress: document.getElementById('progress').textContent,
                message: document.getElementById('message').hidden ? '' :
                    document.getElementById('message').textContent,
            })"""
        )
        screenshot(page, "timed-out")
        pytest.fail(f"{count} images not shown within {WAIT_MS} ms: {shown}")


def tile_digests(page) -> list[str]:
    """SHA-256 of each tile's image bytes, in grid order."""
    return page.evaluate(
        """async () => Promise.all([...document.querySelectorAll('#grid li')].map(async li => {
            const bytes = await li.blob.arrayBuffer();
            const digest = await crypto.subtle.digest('SHA-256', bytes);
            return [...new Uint8Array(digest)].map(b => b.toString(16).padStart(2, '0')).join('');
        }))"""
    )


def generation(page) -> int:
    return int(page.get_attribute("#grid li", "data-generation"))


def screenshot(page, name: str) -> None:
    page.screenshot(path=str(screenshot_dir() / f"{name}.png"), full_page=True)


def post(url: str, data: bytes) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=data, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read().splitlines()[0])
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def post_declaring(gateway: str, path: str, size: int) -> tuple[int, dict]:
    """A POST whose Content-Length says ``size``, answered before any of the body is sent
    (sending 50 MB to a server that has refused them would end in a connection reset)."""
    connection = http.client.HTTPConnection(urllib.parse.urlsplit(gateway).netloc, timeout=30)
    try:
        connection.putrequest("POST", path)
        connection.putheader("Content-Length", str(size))
        connection.endheaders()
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def decoded_size(data: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(data)) as image:
        assert image.format == "JPEG"
        return image.size


def test_gateway_states_the_servers_limits_and_refuses_before_forwarding(gateway: str):
    with urllib.request.urlopen(f"{gateway}/api/limits") as response:
        limits = json.loads(response.read())
        assert "default-src 'self'" in response.headers["Content-Security-Policy"]
    codec, options = DecodeLimits(), ReenactmentConfig()
    assert limits["max_bytes"] == codec.max_bytes and limits["max_pixels"] == codec.max_pixels
    assert limits["max_targets"] == options.max_targets
    assert limits["max_intensity"] == options.max_intensity
    pose = limits["max_head_pose_deg"]
    assert (pose["yaw"], pose["pitch"], pose["roll"]) == options.max_head_pose_deg

    status, body = post(f"{gateway}/api/reenact", b"GIF89a" + bytes(64))
    assert (status, body["kind"]) == (415, "not_image") and "GIF" in body["error"]
    status, body = post_declaring(gateway, "/api/reenact", codec.max_bytes + 1)
    assert (status, body["kind"]) == (413, "too_large")
    assert f"{codec.max_bytes:,}" in body["error"]
    status, body = post(f"{gateway}/api/reenact", b"")
    assert (status, body["kind"]) == (400, "not_image")


def test_gateway_passes_the_servers_refusals_on(gateway: str, astronaut_jpeg: bytes):
    max_yaw = ReenactmentConfig().max_head_pose_deg[0]
    status, body = post(f"{gateway}/api/reenact?yaw={max_yaw + 1}", astronaut_jpeg)
    assert (status, body["kind"]) == (400, "invalid") and body["error"].startswith("HEAD_POSE")
    status, body = post(f"{gateway}/api/reenact?emotion=smug", astronaut_jpeg)
    assert status == 400 and "unknown emotion 'smug'" in body["error"]
    too_many = "&".join(["emotion=happy"] * (ReenactmentConfig().max_targets + 1))
    status, body = post(f"{gateway}/api/reenact?{too_many}", astronaut_jpeg)
    assert status == 400 and "the limit is" in body["error"]
    status, body = post(f"{gateway}/api/reenact?blendshape=jawOpen:2", astronaut_jpeg)
    assert status == 400 and body["error"].startswith("EXPRESSION weights must be")
    status, body = post(f"{gateway}/api/reenact?blendshape=grin:1", astronaut_jpeg)
    assert status == 400 and "unknown blendshape 'grin'" in body["error"]


def test_astronaut_fills_the_grid_with_15_emotions_as_they_arrive(
    page, astronaut_jpeg: bytes, default_emotions: tuple[str, ...]
):
    # how many tiles hold an image after each change of the grid
    page.evaluate(
        """() => { window.readyCounts = [];
            new MutationObserver(() => window.readyCounts.push(
                document.querySelectorAll('#grid li[data-state=ready]').length))
            .observe(document.getElementById('grid'), {subtree: true, attributes: true}); }"""
    )
    upload(page, astronaut_jpeg, "astronaut.jpg")
    wait_for_grid(page, len(default_emotions))
    names = page.eval_on_selector_all("#grid li", "tiles => tiles.map(t => t.dataset.emotion)")
    assert names == list(default_emotions)
    sizes = page.eval_on_selector_all(
        "#grid li img", "imgs => imgs.map(i => [i.naturalWidth, i.naturalHeight])"
    )
    assert sizes == [[CANVAS_WIDTH, CANVAS_HEIGHT]] * len(default_emotions)
    counts = page.evaluate("() => window.readyCounts")
    assert any(0 < c < len(default_emotions) for c in counts), f"all at once: {counts}"
    assert len(set(tile_digests(page))) == len(default_emotions)  # 15 different faces
    assert "15 images" in page.inner_text("#progress")
    screenshot(page, "astronaut")

    with page.expect_download() as one:
        page.get_by_role("link", name="Download happy").click()
    assert one.value.suggested_filename == "reenact-happy.jpg"
    assert decoded_size(Path(one.value.path()).read_bytes()) == (CANVAS_WIDTH, CANVAS_HEIGHT)

    with page.expect_download() as everything:
        page.get_by_role("button", name="Download all (.zip)").click()
    with zipfile.ZipFile(everything.value.path()) as archive:
        assert archive.testzip() is None  # every CRC-32 checks out
        expected = [f"reenact-{n.replace(' ', '-')}.jpg" for n in default_emotions]
        assert archive.namelist() == expected
        for name in expected:
            assert decoded_size(archive.read(name)) == (CANVAS_WIDTH, CANVAS_HEIGHT)
        zipped = [hashlib.sha256(archive.read(n)).hexdigest() for n in expected]
    assert zipped == tile_digests(page)


def test_sliders_re_render_the_grid_and_the_expression_editor(
    page, astronaut_jpeg: bytes, default_emotions: tuple[str, ...]
):
    upload(page, astronaut_jpeg, "astronaut.jpg")
    wait_for_grid(page, len(default_emotions))
    before = tile_digests(page)
    first = generation(page)

    # intensity 0 is the photo's own expression for every emotion: 15 identical images
    with page.expect_request(lambda r: asks(r.url, "/api/reenact", intensity="0")):
        page.get_by_label("Intensity").press("Home")  # the keyboard moves the slider
    wait_for_grid(page, len(default_emotions), first + 1)
    after = tile_digests(page)
    assert len(set(after)) == 1 and not set(after) & set(before)
    assert page.input_value("#intensity") == "0"

    # a few key presses in a row make one request, with the last value
    yaw = page.get_by_label("Turn (yaw, degrees)")
    with page.expect_request(lambda r: asks(r.url, "/api/reenact", yaw="3")):
        for _ in range(3):
            yaw.press("ArrowRight")
    wait_for_grid(page, len(default_emotions), first + 2)
    assert set(tile_digests(page)).isdisjoint(after)

    with page.expect_response(
        lambda r: "jawOpen:1" in query(r.url).get("blendshape", [])
    ) as answer:
        page.get_by_label("jawOpen").press("End")
    assert answer.value.status == 200
    page.wait_for_selector("#editor-image:not([hidden])")
    page.wait_for_function("() => document.getElementById('editor-image').naturalWidth > 0")
    size = page.eval_on_selector("#editor-image", "i => [i.naturalWidth, i.naturalHeight]")
    assert size == [CANVAS_WIDTH, CANVAS_HEIGHT]
    assert page.is_visible("#editor-download")
    screenshot(page, "sliders-and-editor")


def test_second_face_of_a_group_photo(
    page, group_jpeg: bytes, default_emotions: tuple[str, ...], triton: TritonServer
):
    upload(page, group_jpeg, "group.jpg")
    wait_for_grid(page, len(default_emotions))
    page.wait_for_selector("#face-picker:not([hidden])")
    assert page.locator("#face-options input[type=radio]").count() == GROUP_FACES
    largest = tile_digests(page)

    with page.expect_request(lambda r: asks(r.url, "/api/reenact", face="1")):
        page.get_by_label("Face 2").check()
    wait_for_grid(page, len(default_emotions))
    assert set(tile_digests(page)).isdisjoint(largest)
    # the box the server reported for the images shown
    boxes = set(page.eval_on_selector_all("#grid li", "tiles => tiles.map(t => t.dataset.faceBox)"))

    with ReenactClient(triton.grpc_url) as client:  # the server itself, not through the page
        expected = client.reenact(group_jpeg, emotions=["neutral"], face_index=1).face_box
        lefts = sorted(
            client.reenact(group_jpeg, emotions=["neutral"], face_index=i).face_box[0]
            for i in range(GROUP_FACES)
        )
    (box_text,) = boxes
    box = [float(v) for v in box_text.split(",")]
    np.testing.assert_allclose(box, expected, atol=0.01)  # the gateway rounds to 0.01 px
    assert box[0] == pytest.approx(lefts[1], abs=0.01)  # the second from the left
    assert page.is_checked("#face-options input[value='1']")
    assert page.get_attribute("#face-boxes .face-box[data-index='1']", "data-selected") == "true"
    screenshot(page, "group-second-face")


def test_refusals_are_explained(page):
    upload(page, b"%PDF-1.4 a letter, not a photo", "letter.pdf", "application/pdf")
    page.wait_for_selector("#message:not([hidden])")
    assert page.inner_text("#message-title") == "Not a photo the server can read"
    assert "PDF" in page.inner_text("#message-text")
    screenshot(page, "not-an-image")

    upload(page, jpeg_bytes(np.full((240, 320, 3), 128, np.uint8)), "grey.jpg")
    page.wait_for_function(
        "() => document.getElementById('message-title').textContent === 'No face found'"
    )
    assert "no face found" in page.inner_text("#message-text")
    screenshot(page, "no-face")

    # a photo over the server's limit, dropped on the page: refused before anything is sent
    sent: list[str] = []
    page.on("request", lambda r: sent.append(r.url) if "/api/reenact" in r.url else None)
    max_bytes = DecodeLimits().max_bytes
    page.evaluate(
        """(size) => {
            const file = new File([new Uint8Array(size)], 'huge.jpg', {type: 'image/jpeg'});
            const transfer = new DataTransfer();
            transfer.items.add(file);
            document.getElementById('dropzone').dispatchEvent(
                new DragEvent('drop', {dataTransfer: transfer, bubbles: true, cancelable: true}));
        }""",
        max_bytes + 1,
    )
    page.wait_for_function(
        "() => document.getElementById('message-title').textContent === 'Photo too large'"
    )
    assert f"the limit is {max_bytes:,} bytes" in page.inner_text("#message-text")
    assert sent == []
    screenshot(page, "too-large")


def test_keyboard_order_and_phone_width(browser, gateway: str, astronaut_jpeg: bytes):
    context = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True)
    page = context.new_page()
    page.goto(gateway)
    page.wait_for_selector("body[data-ready=true]")
    upload(page, astronaut_jpeg, "astronaut.jpg")
    wait_for_grid(page, 15)
    # nothing wider than the phone's screen
    assert page.evaluate("() => document.documentElement.scrollWidth") <= PHONE["width"]
    screenshot(page, "phone")

    page.evaluate("() => document.activeElement.blur()")
    order = []
    for _ in range(12):
        page.keyboard.press("Tab")
        order.append(
            page.evaluate("() => document.activeElement.id || document.activeElement.textContent")
        )
    expected = ["choose-photo", "take-photo", "intensity", "yaw", "pitch", "roll", "reset-sliders"]
    positions = [order.index(name) for name in expected]
    assert positions == sorted(positions), order
    context.close()


def test_stopped_server_is_reported_unavailable(page, triton: TritonServer, astronaut_jpeg: bytes):
    triton.stop()
    upload(page, astronaut_jpeg, "astronaut.jpg")
    page.wait_for_selector("#message:not([hidden])", timeout=WAIT_MS)
    assert page.inner_text("#message-title") == "Server unavailable"
    assert "server unavailable" in page.inner_text("#message-text")
    assert page.inner_text("#server-status") == "Server unavailable"
    screenshot(page, "server-unavailable")

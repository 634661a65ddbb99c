"""End to end: `seqmnist serve` in a subprocess, the page in headless Chromium, mouse-drawn digits.

Ten real MNIST test digits are traced onto the page's canvas with mouse strokes (each row's runs
of ink, scaled up), exactly as a person's drag would arrive: pointer events, the page's own brush,
its debounced request, the server's preprocessing and model. The page must name at least 9 of 10.

Chromium comes from Debian's `chromium` package (`apt-get install chromium`). Without it the
test skips, except under CI=true where it fails: CI must run it.
Set SEQMNIST_SAVE_SCREENSHOT=1 to refresh docs/serve.png (and docs/serve-phone.png).
"""

from __future__ import annotations

import io
import os
import re
import select
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
REPO = Path(__file__).resolve().parents[1]
INK_THRESHOLD = 128  # MNIST pixels at least this bright are traced as ink
DIGITS = 10


def _require_browser() -> None:
    """Skip without Chromium or Playwright, unless CI=true: there the browser test must run."""
    missing = []
    if not Path(CHROMIUM).is_file():
        missing.append(f"{CHROMIUM} (apt-get install chromium)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing.append("the playwright Python package (pip install playwright)")
    if missing:
        message = "browser test needs " + " and ".join(missing)
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture(scope="module")
def browser_installed() -> None:
    """First of all, so that no model is trained just to skip."""
    _require_browser()


@pytest.fixture(scope="module")
def browser(browser_installed: None) -> Iterator[Any]:
    """Headless Chromium."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="module")
def server_url(
    browser_installed: None,
    real_run: Path,
    tmp_path_factory: pytest.TempPathFactory,
    request: pytest.FixtureRequest,
) -> Iterator[str]:
    """`seqmnist serve REAL_RUN --port 0` in a subprocess; yields its http://127.0.0.1:PORT/."""
    log_path = tmp_path_factory.mktemp("serve") / "server.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "seqmnist",
                "serve",
                str(real_run),
                "--host",
                "127.0.0.1",
                "--port",
                "0",
            ],
            stdout=subprocess.PIPE,
            stderr=log,
            cwd=REPO,
        )
    try:
        request.getfixturevalue("browser")  # start Chromium while the server loads its model
        url = _wait_for_url(process, timeout=60)
        if url is None:
            process.kill()
            pytest.fail(f"seqmnist serve did not start; its log:\n{log_path.read_text()[-3000:]}")
        # uvicorn's access log goes to stdout: keep draining it so the server never blocks on it
        threading.Thread(
            target=shutil.copyfileobj, args=(process.stdout, log_path.open("ab")), daemon=True
        ).start()
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_for_url(process: subprocess.Popen, timeout: float) -> str | None:
    """The URL from the server's "serving ... on http://HOST:PORT/" line, or None if it died."""
    assert process.stdout is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        ready, _, _ = select.select([process.stdout], [], [], 0.5)
        if ready:
            match = re.search(rb"on (http://127\.0\.0\.1:\d+/)", process.stdout.readline())
            if match:
                return match.group(1).decode()
    return None


def ink_runs(image: np.ndarray, threshold: int = INK_THRESHOLD) -> list[tuple[int, int, int]]:
    """(row, first column, last column) of each horizontal run of ink in a (28, 28) image."""
    runs = []
    for row in range(image.shape[0]):
        ink = np.flatnonzero(image[row] >= threshold)
        if ink.size == 0:
            continue
        breaks = np.flatnonzero(np.diff(ink) > 1)
        starts = np.concatenate([[ink[0]], ink[breaks + 1]])
        ends = np.concatenate([ink[breaks], [ink[-1]]])
        runs.extend((row, int(s), int(e)) for s, e in zip(starts, ends))
    return runs


def draw_digit(page, image: np.ndarray) -> None:
    """Trace ``image``'s ink onto #canvas: one mouse stroke along each run of ink, row by row."""
    box = page.locator("#canvas").bounding_box()
    cell = box["width"] / image.shape[1]  # screen pixels per MNIST pixel

    def at(row: float, col: float) -> tuple[float, float]:
        return box["x"] + (col + 0.5) * cell, box["y"] + (row + 0.5) * cell

    for row, first, last in ink_runs(image):
        page.mouse.move(*at(row, first))
        page.mouse.down()
        page.mouse.move(*at(row, last))  # one pointermove: the page draws a straight segment
        page.mouse.up()


def predictions_done(page) -> int:
    return int(page.locator("#result").get_attribute("data-predictions") or 0)


def wait_for_prediction(page, before: int) -> None:
    """Until the page has shown an answer newer than ``before`` and nothing is pending."""
    page.wait_for_function(
        "before => { const r = document.querySelector('#result');"
        " return r.dataset.state === 'done' && Number(r.dataset.predictions || 0) > before; }",
        arg=before,
        timeout=15_000,
    )


@pytest.fixture(scope="module")
def digits(real_data_dir: Path) -> tuple[np.ndarray, list[int]]:
    """The first ten MNIST test digits and their labels."""
    from seqmnist.data import load_mnist

    split = load_mnist(real_data_dir, train=False, download=False)
    return split.images[:DIGITS].numpy(), split.labels[:DIGITS].tolist()


def open_page(browser: Any, url: str, errors: list[str], **options: Any) -> Any:
    """A new tab on ``url``, once the page has shown the model.

    Its console errors go to ``errors``.
    """
    page = browser.new_page(**options)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.goto(url)
    page.wait_for_function("() => document.querySelector('#model-info').textContent.length > 0")
    return page


def paper_png(image: np.ndarray) -> bytes:
    """An MNIST digit as a photo of paper would look: black ink on white, 300x300."""
    buffer = io.BytesIO()
    Image.fromarray(255 - image).resize((300, 300), Image.Resampling.BILINEAR).save(
        buffer, format="PNG"
    )
    return buffer.getvalue()


def test_drawn_digits_are_recognised(
    browser: Any, server_url: str, digits: tuple[np.ndarray, list[int]], tmp_path: Path
) -> None:
    images, labels = digits
    errors: list[str] = []
    page = open_page(browser, server_url, errors, viewport={"width": 900, "height": 720})
    assert "parameters" in page.locator("#model-info").inner_text()

    shown = []
    for image in images:
        page.click("#clear")
        before = predictions_done(page)
        draw_digit(page, image)
        wait_for_prediction(page, before)
        shown.append(int(page.locator("#top1").inner_text()))
        # three bars, and the 28x28 preview is the server's PNG
        assert page.locator("#topk li").count() == 3
        assert page.locator("#preview").get_attribute("src").startswith("data:image/png;base64,")
    correct = sum(s == y for s, y in zip(shown, labels))
    assert correct >= 9, f"page said {shown} for digits {labels}: {correct}/10 correct"

    screenshot = tmp_path / "serve.png"
    page.screenshot(path=str(screenshot), animations="disabled")
    assert screenshot.stat().st_size > 10_000

    # Clear empties the canvas and the answer
    page.click("#clear")
    assert page.locator("#top1").inner_text() == "?"
    assert page.locator("#result").get_attribute("data-state") == "idle"
    assert not errors, f"browser console errors: {errors}"

    if os.environ.get("SEQMNIST_SAVE_SCREENSHOT"):  # refresh the README's picture: one digit drawn
        before = predictions_done(page)
        draw_digit(page, images[0])
        wait_for_prediction(page, before)
        (REPO / "docs").mkdir(exist_ok=True)
        page.screenshot(path=str(REPO / "docs" / "serve.png"), animations="disabled")
    page.close()


def test_file_chosen_or_dropped(
    browser: Any, server_url: str, digits: tuple[np.ndarray, list[int]]
) -> None:
    images, labels = digits
    errors: list[str] = []
    page = open_page(browser, server_url, errors, viewport={"width": 900, "height": 720})
    photo = paper_png(images[4])

    before = predictions_done(page)
    page.set_input_files(
        "#file", files=[{"name": "four.png", "mimeType": "image/png", "buffer": photo}]
    )
    wait_for_prediction(page, before)
    assert int(page.locator("#top1").inner_text()) == labels[4]

    page.click("#clear")
    before = predictions_done(page)
    dropped = page.evaluate_handle(
        """bytes => { const data = new DataTransfer();
           data.items.add(new File([new Uint8Array(bytes)], "four.png", {type: "image/png"}));
           return data; }""",
        list(photo),
    )
    page.dispatch_event("main", "drop", {"dataTransfer": dropped})
    wait_for_prediction(page, before)
    assert int(page.locator("#top1").inner_text()) == labels[4]

    # not an image: the server's message is shown, and the page still works afterwards
    page.set_input_files(
        "#file", files=[{"name": "notes.txt", "mimeType": "text/plain", "buffer": b"hello"}]
    )
    page.wait_for_function("() => document.querySelector('#result').dataset.state === 'error'")
    assert "not an image" in page.locator("#status").inner_text()
    before = predictions_done(page)
    draw_digit(page, images[0])
    wait_for_prediction(page, before)
    assert int(page.locator("#top1").inner_text()) == labels[0]
    assert [e for e in errors if "422" not in e] == []  # the browser itself logs the failed request
    page.close()


def test_phone_sized_screen(
    browser: Any, server_url: str, digits: tuple[np.ndarray, list[int]], tmp_path: Path
) -> None:
    images, labels = digits
    errors: list[str] = []
    page = open_page(
        browser,
        server_url,
        errors,
        viewport={"width": 390, "height": 844},
        device_scale_factor=2,
        has_touch=True,
        is_mobile=True,
    )
    box = page.locator("#canvas").bounding_box()
    assert box["width"] >= 300 and box["x"] + box["width"] <= 390  # the canvas fills the width
    assert page.evaluate("document.documentElement.scrollWidth") <= 390  # nothing scrolls sideways
    before = predictions_done(page)
    draw_digit(page, images[1])
    wait_for_prediction(page, before)
    assert int(page.locator("#top1").inner_text()) == labels[1]
    top1 = page.locator("#top1").bounding_box()
    assert top1["y"] + top1["height"] <= 844, "the answer is visible without scrolling"
    screenshot = tmp_path / "serve-phone.png"
    page.screenshot(path=str(screenshot), full_page=True, animations="disabled")
    assert not errors, f"browser console errors: {errors}"
    if os.environ.get("SEQMNIST_SAVE_SCREENSHOT"):
        (REPO / "docs").mkdir(exist_ok=True)
        shutil.copy(screenshot, REPO / "docs" / "serve-phone.png")
    page.close()


def phone_photo(image: np.ndarray, side: int = 3000, seed: int = 0) -> tuple[bytes, Image.Image]:
    """A phone's photo of an MNIST digit on paper: (JPEG bytes, the upright picture).

    ``side`` x ``side`` pixels: the digit upscaled dark onto unevenly lit, noisy paper, saved at
    quality 95 (the noise keeps the file large, as a real photo's grain does) and stored sideways
    with an EXIF Orientation tag of 6, as phones store photos taken upright.
    """
    rng = np.random.default_rng(seed)
    rows, cols = np.ogrid[0:side, 0:side]
    light = 0.9 + 0.1 * (cols / side) - 0.05 * (rows / side)  # (side, side) by broadcasting
    paper = (235 * light + rng.normal(0, 14, (side, side))).astype(np.float32)
    digit_side = side * 3 // 5
    ink = np.asarray(
        Image.fromarray(image).resize((digit_side, digit_side), Image.Resampling.BICUBIC),
        dtype=np.float32,
    )
    top, left = side // 5, side // 5 + side // 50  # a little off-centre
    paper[top : top + digit_side, left : left + digit_side] *= 1 - 0.8 * ink / 255
    tint = np.array([1.0, 0.97, 0.9], dtype=np.float32)  # warm indoor light
    upright = Image.fromarray((paper[:, :, None] * tint).clip(0, 255).astype(np.uint8))
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: turn 90 degrees clockwise to show
    buffer = io.BytesIO()
    upright.transpose(Image.Transpose.ROTATE_90).save(
        buffer, format="JPEG", quality=95, exif=exif.tobytes()
    )
    return buffer.getvalue(), upright


def multipart_file(body: bytes, content_type: str) -> bytes:
    """The bytes of the ``file`` part of a multipart/form-data body."""
    boundary = content_type.split("boundary=", 1)[1].strip('"').encode()
    for part in body.split(b"--" + boundary):
        head, _, content = part.partition(b"\r\n\r\n")
        if b'name="file"' in head:
            return content.removesuffix(b"\r\n")
    raise AssertionError(f"no file part in a {len(body):,}-byte body")


def test_photo_over_the_body_limit_is_sent_shrunk(
    browser: Any,
    server_url: str,
    real_run: Path,
    digits: tuple[np.ndarray, list[int]],
    tmp_path: Path,
) -> None:
    """A 3,000 x 3,000 phone photo over 2 MB is sent as an upright, shrunk copy of the photo
    alone, under the API's limit, and the page names what `seqmnist predict` names on the file."""
    from seqmnist.predict import load
    from seqmnist.serve.payloads import MAX_BODY_BYTES

    images, labels = digits
    photo, upright = phone_photo(images[0])
    assert len(photo) > MAX_BODY_BYTES, f"the test photo is only {len(photo):,} bytes"
    path = tmp_path / "IMG_0001.jpg"
    path.write_bytes(photo)
    expected = load(real_run).predict(path)[0].label  # what `seqmnist predict` says on the file
    assert expected == labels[0], "the model should read the photo; else the test proves little"

    errors: list[str] = []
    page = open_page(browser, server_url, errors, viewport={"width": 900, "height": 720})
    assert (
        page.evaluate("fetch('api/model').then(r => r.json())")["limits"]["max_body_bytes"]
        == MAX_BODY_BYTES
    )
    sent: list[tuple[bytes, str]] = []

    def record(route: Any) -> None:
        request = route.request
        sent.append((request.post_data_buffer or b"", request.headers.get("content-type", "")))
        route.continue_()

    page.route("**/api/predict", record)
    before = predictions_done(page)
    page.set_input_files(
        "#file", files=[{"name": path.name, "mimeType": "image/jpeg", "buffer": photo}]
    )
    wait_for_prediction(page, before)
    assert int(page.locator("#top1").inner_text()) == expected
    status = page.locator("#status").inner_text()
    assert "copy" in status and path.name in status, status
    page.screenshot(path=str(tmp_path / "serve-photo.png"), animations="disabled")

    assert len(sent) == 1
    body, content_type = sent[0]
    assert 0 < len(body) <= MAX_BODY_BYTES, f"the page sent {len(body):,} bytes"
    copy = Image.open(io.BytesIO(multipart_file(body, content_type)))
    assert copy.format in ("JPEG", "PNG")
    assert copy.size[0] == copy.size[1] and 1024 <= copy.size[0] <= 1600, copy.size
    # the photo alone and upright: like the upright picture, not the stored (sideways) pixels
    small = (64, 64)
    seen = np.asarray(copy.convert("L").resize(small), dtype=np.float32)
    as_shown = np.asarray(upright.convert("L").resize(small), dtype=np.float32)
    as_stored = np.asarray(
        upright.transpose(Image.Transpose.ROTATE_90).convert("L").resize(small), dtype=np.float32
    )
    assert np.abs(seen - as_shown).mean() < 0.25 * np.abs(seen - as_stored).mean()
    assert np.abs(seen - as_shown).mean() < 8, "the copy is not the photo (letterboxed?)"

    # a file under the limit is still sent as it is
    small_photo = paper_png(images[4])
    sent.clear()
    before = predictions_done(page)
    page.set_input_files(
        "#file", files=[{"name": "four.png", "mimeType": "image/png", "buffer": small_photo}]
    )
    wait_for_prediction(page, before)
    assert int(page.locator("#top1").inner_text()) == labels[4]
    assert multipart_file(*sent[0]) == small_photo
    assert "copy" not in page.locator("#status").inner_text()
    assert not errors, f"browser console errors: {errors}"
    page.close()


def test_answer_warnings_are_shown(
    browser: Any, server_url: str, digits: tuple[np.ndarray, list[int]], tmp_path: Path
) -> None:
    """Each of the answer's ``warnings`` is a visible line near the answer, as text (not markup),
    gone with the next answer that has none."""
    images, labels = digits
    said = [
        "Two digits side by side? <b>Crop</b> to one & try again.",
        "Low confidence: the top digit has 41 %.",
    ]

    def add_warnings(route: Any) -> None:  # the server's real answer, plus two warnings
        response = route.fetch()
        route.fulfill(response=response, json={**response.json(), "warnings": said})

    errors: list[str] = []
    page = open_page(browser, server_url, errors, viewport={"width": 900, "height": 720})
    assert page.locator("#warnings li").count() == 0
    page.route("**/api/predict", add_warnings)
    before = predictions_done(page)
    draw_digit(page, images[2])
    wait_for_prediction(page, before)
    lines = page.locator("#warnings li")
    assert lines.all_inner_texts() == said
    assert all(line.is_visible() for line in lines.all())
    assert page.locator("#warnings b").count() == 0, "a warning was read as HTML"
    answer, first = page.locator("#top1").bounding_box(), lines.first.bounding_box()
    card = page.locator("#result").bounding_box()
    assert 0 <= first["y"] - (answer["y"] + answer["height"]) < 60, "the warning is near the answer"
    assert first["x"] + first["width"] <= card["x"] + card["width"]
    page.screenshot(path=str(tmp_path / "serve-warnings.png"), animations="disabled")

    page.unroute("**/api/predict")
    before = predictions_done(page)  # the same strokes again: the same digit, no warnings now
    draw_digit(page, images[2])
    wait_for_prediction(page, before)
    assert int(page.locator("#top1").inner_text()) == labels[2]
    assert page.locator("#warnings li").count() == 0
    assert not page.locator("#warnings").is_visible()
    assert not errors, f"browser console errors: {errors}"
    page.close()


# Count the painted pixels of the page's reading strip (a canvas).
PAINTED_PIXELS = """() => {
  const c = document.querySelector('#reading-strip');
  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  let n = 0;
  for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++;
  return n;
}"""


def test_the_page_shows_how_the_prediction_evolved(
    browser: Any, server_url: str, digits: tuple[np.ndarray, list[int]]
) -> None:
    """Opt-in: the plain request carries no ?reading; ticking the box asks for it and the page
    draws the probabilities after each row and says from which row the answer held."""
    images, labels = digits
    errors: list[str] = []
    page = open_page(browser, server_url, errors, viewport={"width": 900, "height": 820})
    urls: list[str] = []
    page.on("request", lambda r: urls.append(r.url) if "api/predict" in r.url else None)
    before = predictions_done(page)
    draw_digit(page, images[0])
    wait_for_prediction(page, before)
    assert page.locator("#reading").is_hidden()
    assert urls and not any("reading" in url for url in urls)

    before = predictions_done(page)
    page.check("#show-reading")  # re-asks for the drawing on the canvas
    wait_for_prediction(page, before)
    assert urls[-1].endswith("/api/predict?reading=1")
    assert page.locator("#reading").is_visible()
    assert page.locator("#reading").get_attribute("data-steps") == "28"
    settled = int(page.locator("#reading").get_attribute("data-settled"))
    assert 1 <= settled <= 28
    note = page.locator("#reading-note").inner_text()
    assert f"the answer is {labels[0]} from row {settled} on" in note, note
    assert page.evaluate(PAINTED_PIXELS) > 1000
    if os.environ.get("SEQMNIST_SAVE_SCREENSHOT"):
        page.screenshot(path=str(REPO / "docs" / "serve-reading.png"), animations="disabled")

    page.uncheck("#show-reading")
    assert page.locator("#reading").is_hidden()
    page.check("#show-reading")
    page.click("#clear")
    assert page.locator("#reading").is_hidden()
    assert not errors, f"browser console errors: {errors}"
    page.close()

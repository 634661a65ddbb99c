"""End to end: `seqmnist serve` in a subprocess, the page in headless Chromium, digits drawn with the mouse.

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

import numpy as np
import pytest
from PIL import Image

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
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
def server_url(real_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`seqmnist serve REAL_RUN --port 0` in a subprocess; yields its http://127.0.0.1:PORT/."""
    _require_browser()
    log_path = tmp_path_factory.mktemp("serve") / "server.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "seqmnist", "serve", str(real_run), "--host", "127.0.0.1", "--port", "0"],
            stdout=subprocess.PIPE, stderr=log, cwd=REPO,
        )
    try:
        url = _wait_for_url(process, timeout=60)
        if url is None:
            process.kill()
            pytest.fail(f"seqmnist serve did not start; its log:\n{log_path.read_text()[-3000:]}")
        # uvicorn's access log goes to stdout: keep draining it so the server never blocks on it
        threading.Thread(target=shutil.copyfileobj, args=(process.stdout, log_path.open("ab")), daemon=True).start()
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
        arg=before, timeout=15_000,
    )


def test_drawn_digits_are_recognised(server_url: str, real_data_dir: Path, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    from seqmnist.data import load_mnist

    test_split = load_mnist(real_data_dir, train=False, download=False)
    images = test_split.images[:DIGITS].numpy()
    labels = test_split.labels[:DIGITS].tolist()

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 900, "height": 720})
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
            page.goto(server_url)
            page.wait_for_function("() => document.querySelector('#model-info').textContent.length > 0")
            assert "parameters" in page.locator("#model-info").inner_text()

            shown = []
            for image in images:
                page.click("#clear")
                before = predictions_done(page)
                draw_digit(page, image)
                wait_for_prediction(page, before)
                shown.append(int(page.locator("#top1").inner_text()))
                # the three bars are filled, best first, and the 28x28 preview is the server's PNG
                assert page.locator("#topk li").count() == 3
                assert page.locator("#preview").get_attribute("src").startswith("data:image/png;base64,")
            correct = sum(s == y for s, y in zip(shown, labels))
            assert correct >= 9, f"page said {shown} for digits {labels}: {correct}/10 correct"

            screenshot = tmp_path / "serve.png"
            page.screenshot(path=str(screenshot), animations="disabled")
            assert screenshot.stat().st_size > 10_000

            # an image file chosen with the file input: a photo-like digit, black ink on white paper
            paper = Image.fromarray(255 - images[4]).resize((300, 300), Image.Resampling.BILINEAR)
            buffer = io.BytesIO()
            paper.save(buffer, format="PNG")
            before = predictions_done(page)
            page.set_input_files("#file", files=[{"name": "four.png", "mimeType": "image/png", "buffer": buffer.getvalue()}])
            wait_for_prediction(page, before)
            assert int(page.locator("#top1").inner_text()) == labels[4]
            # the same file dropped on the page
            page.click("#clear")
            before = predictions_done(page)
            drop = page.evaluate_handle(
                """bytes => { const data = new DataTransfer();
                   data.items.add(new File([new Uint8Array(bytes)], "four.png", {type: "image/png"}));
                   return data; }""",
                list(buffer.getvalue()),
            )
            page.dispatch_event("main", "drop", {"dataTransfer": drop})
            wait_for_prediction(page, before)
            assert int(page.locator("#top1").inner_text()) == labels[4]
            # a file that is not an image: the server's message is shown, nothing breaks
            page.set_input_files("#file", files=[{"name": "notes.txt", "mimeType": "text/plain", "buffer": b"hello"}])
            page.wait_for_function("() => document.querySelector('#result').dataset.state === 'error'")
            assert "not an image" in page.locator("#status").inner_text()
            errors = [e for e in errors if "422" not in e]  # the browser logs the failed request itself

            # Clear empties the canvas and the answer
            page.click("#clear")
            assert page.locator("#top1").inner_text() == "?"
            assert page.locator("#result").get_attribute("data-state") == "idle"

            # a phone-sized screen: the canvas fits the width, nothing scrolls sideways
            phone = browser.new_page(viewport={"width": 390, "height": 844}, device_scale_factor=2,
                                     has_touch=True, is_mobile=True)
            phone.goto(server_url)
            phone_box = phone.locator("#canvas").bounding_box()
            assert phone_box["width"] >= 300 and phone_box["x"] + phone_box["width"] <= 390
            assert phone.evaluate("document.documentElement.scrollWidth") <= 390
            before = predictions_done(phone)
            draw_digit(phone, images[0])
            wait_for_prediction(phone, before)
            phone_shot = tmp_path / "serve-phone.png"
            phone.screenshot(path=str(phone_shot), full_page=True, animations="disabled")

            assert not errors, f"browser console errors: {errors}"
            if os.environ.get("SEQMNIST_SAVE_SCREENSHOT"):
                (REPO / "docs").mkdir(exist_ok=True)
                page.goto(server_url)  # a fresh page, one digit drawn, for the README
                page.wait_for_function("() => document.querySelector('#model-info').textContent.length > 0")
                before = predictions_done(page)
                draw_digit(page, images[0])
                wait_for_prediction(page, before)
                page.screenshot(path=str(REPO / "docs" / "serve.png"), animations="disabled")
                shutil.copy(phone_shot, REPO / "docs" / "serve-phone.png")
        finally:
            browser.close()

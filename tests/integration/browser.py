"""Playwright for Python driving Debian's Chromium (never `playwright install`) against the web UI that the shared
live server serves at /ui/: the page handle the browser tests use, the requests it sent and the canvases it drew.

The page runs under its real Content-Security-Policy, so the helpers use only what works there (`evaluate` and
locator waits, no `wait_for_function`).
"""

from __future__ import annotations

import base64
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from playwright.sync_api import Page, Response, expect

from segserve.media.masks import decode_rle

REPO_ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"  # Debian's package; `make test` installs it when missing
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update"]
ARTIFACTS = Path(os.environ.get("SEGSERVE_TEST_ARTIFACTS", REPO_ROOT / "build" / "test-artifacts")) / "web-ui"
REQUEST_TIMEOUT_MS = 150_000  # a request that runs the SAM2 encoder on two busy shared cores

# The canvas's RGBA pixels, base64 (evaluate returns JSON: a string is the compact way out).
_READ_CANVAS = """(id) => {
  const canvas = document.getElementById(id);
  const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
  let text = '';
  for (let i = 0; i < data.length; i += 0x8000) text += String.fromCharCode.apply(null, data.subarray(i, i + 0x8000));
  return [canvas.width, canvas.height, btoa(text)];
}"""


@dataclass(frozen=True)
class Exchange:
    """One POST the page sent to /invocations, and what it got back."""

    request: dict
    status: int
    body: dict | None

    @property
    def action(self) -> str:
        return self.request.get("action", "")


class UiPage:
    """The web UI in one browser tab, recording every segmentation request it sends (pings and session closes
    aside: those are in `session_requests`)."""

    def __init__(self, page: Page, url: str):
        self.page = page
        self.url = url
        self._responses: list[Response] = []
        self.session_requests: list[Exchange] = []
        page.on("response", self._record)
        self.console_errors: list[str] = []
        page.on("pageerror", lambda error: self.console_errors.append(str(error)))

    def _record(self, response: Response) -> None:
        request = response.request
        if request.method == "POST" and request.url.endswith("/invocations"):
            body = request.post_data_json or {}
            if "requestType" in body:  # a session's close (web/js/api.js closeSession), sent without waiting
                self.session_requests.append(Exchange(body, response.status, None))
            elif body.get("action") != "ping":
                self._responses.append(response)

    def open(self) -> UiPage:
        self.page.goto(self.url)
        # A worker restarted by an earlier overload may still be loading on busy shared cores.
        expect(self.page.locator("#health")).to_have_class("pill ready", timeout=180_000)
        return self

    @property
    def exchanges(self) -> list[Exchange]:
        out = []
        for response in self._responses:
            try:
                body = response.json()
            except (json.JSONDecodeError, UnicodeDecodeError):
                body = None
            out.append(Exchange(response.request.post_data_json, response.status, body))
        return out

    def wait_idle(self) -> None:
        expect(self.page.locator("#busy")).to_be_hidden(timeout=REQUEST_TIMEOUT_MS)

    def upload(self, path: Path) -> None:
        self.page.set_input_files("#file-input", str(path))
        expect(self.page.locator("#image-info")).to_contain_text(path.name)
        self.wait_idle()

    def segment_text(self, prompt: str, max_detections: int = 3) -> None:
        self.page.fill("#prompt", prompt)
        self.page.fill("#max-detections", str(max_detections))
        self.page.click("#text-form button[type=submit]")
        self.wait_idle()

    def click_image(self, x: float, y: float, button: str = "left") -> None:
        """A click at pixel (x, y) of the sent image; then waits for the answer."""
        self.page.mouse.click(*self.screen(x, y), button=button)
        self.wait_idle()

    def drag_box(self, x0: float, y0: float, x1: float, y1: float) -> None:
        self.page.mouse.move(*self.screen(x0, y0))
        self.page.mouse.down()
        self.page.mouse.move(*self.screen((x0 + x1) / 2, (y0 + y1) / 2), steps=4)
        self.page.mouse.move(*self.screen(x1, y1), steps=4)
        self.page.mouse.up()
        self.wait_idle()

    def screen(self, x: float, y: float) -> tuple[float, float]:
        """Screen position of image pixel (x, y)."""
        width, height = self.page.evaluate("() => [document.getElementById('prompt-layer').width,"
                                           " document.getElementById('prompt-layer').height]")
        box = self.page.locator("#prompt-layer").bounding_box()
        return box["x"] + x / width * box["width"], box["y"] + y / height * box["height"]

    def layer(self, name: str) -> np.ndarray:
        """The (height, width, 4) RGBA pixels of the image, mask or prompt canvas."""
        width, height, data = self.page.evaluate(_READ_CANVAS, f"{name}-layer")
        return np.frombuffer(base64.b64decode(data), np.uint8).reshape(height, width, 4)

    def download(self, button: str) -> bytes:
        with self.page.expect_download() as info:
            self.page.click(button)
        return Path(info.value.path()).read_bytes()

    def screenshot(self, name: str) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        self.page.screenshot(path=str(path))
        return path


def mask_of(entry: dict) -> np.ndarray:
    """A mask of an answer (COCO RLE), decoded as (height, width) bool."""
    rle = entry["mask"]
    return decode_rle({"size": rle["size"], "counts": rle["counts"]}).astype(bool)


def png_pixels(data: bytes) -> np.ndarray:
    image = Image.open(io.BytesIO(data))
    assert image.format == "PNG"
    return np.array(image)

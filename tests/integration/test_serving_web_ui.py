"""The web UI (web/) in Debian's Chromium, against the shared live server that serves it at /ui/.

Each test drives the page as a person would (upload, type, click, drag, keys) and checks three things: the DOM,
the canvases' pixels (the mask layer must be drawn exactly where the answer's masks are) and the requests the page
sent (what it asked, and that follow-ups carry image_id instead of the image). Screenshots go to ARTIFACTS.
"""

from __future__ import annotations

import base64
import io
import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import expect, sync_playwright

from tests.conftest import make_scene
from tests.integration.browser import CHROMIUM, CHROMIUM_ARGS, Exchange, UiPage, mask_of, png_pixels
from tests.integration.serving import encode
from tests.processes import free_port

pytestmark = pytest.mark.integration

PALETTE = [(59, 130, 246), (249, 115, 22), (16, 185, 129)]  # web/js/palette.js, first three


@pytest.fixture(scope="module")
def browser():
    assert Path(CHROMIUM).is_file(), f"{CHROMIUM} is missing: apt-get install -y chromium (`make test` does that)"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def new_page(browser, server, width=1280, height=800) -> tuple:
    context = browser.new_context(viewport={"width": width, "height": height}, accept_downloads=True)
    return context, UiPage(context.new_page(), server.inference + "/ui/")


@pytest.fixture
def ui(browser, server):
    context, page = new_page(browser, server)
    try:
        yield page.open()
        assert page.console_errors == [], page.console_errors
    finally:
        context.close()


@pytest.fixture(scope="module")
def images(tmp_path_factory, scene_png):
    folder = tmp_path_factory.mktemp("ui-images")
    (folder / "scene.png").write_bytes(scene_png)
    # 400x300 = 120,000 pixels: over the test deployment's max_pixels (100,000), so the endpoint answers 413
    (folder / "too-big.png").write_bytes(encode(make_scene(300, 400), "PNG"))
    return {name: folder / f"{name}.png" for name in ("scene", "too-big")}


def answered(exchanges: list[Exchange], follow_up: int) -> Exchange:
    """The exchange that answered the follow-up at `follow_up`: it carries image_id, not the image; an endpoint
    that does not know the id answers 404 not_found, and then the next exchange re-sends the image."""
    sent = exchanges[follow_up]
    assert "image_id" in sent.request and "image" not in sent.request, sent.request.keys()
    if sent.status == 200:
        return sent
    assert sent.status == 404 and sent.body["error"]["code"] == "not_found", sent
    again = exchanges[follow_up + 1]
    assert "image" in again.request and "image_id" not in again.request
    assert {k: v for k, v in again.request.items() if k != "image"} == \
           {k: v for k, v in sent.request.items() if k != "image_id"}
    assert again.status == 200, again
    return again


def encoder_note(answer: dict) -> str:
    """What the request log must say of the SAM2 encoder for this answer (the same picture may be cached already)."""
    if answer.get("cache") == "hit":
        assert "sam2_image_encoder" not in answer["timings_ms"], answer["timings_ms"]
        return "cache hit, encoder skipped"
    assert "sam2_image_encoder" in answer["timings_ms"], answer["timings_ms"]
    return "encoder ran"


def drawn(ui: UiPage) -> np.ndarray:
    """Where the mask layer has any paint."""
    return ui.layer("mask")[..., 3] > 0


def marker_pixels(layer: np.ndarray, x: float, y: float, colour: str, radius: int = 4) -> int:
    """How many pixels within `radius` of (x, y) are painted mostly in `colour` ("green" or "red")."""
    x, y = round(x), round(y)
    window = layer[max(0, y - radius): y + radius + 1, max(0, x - radius): x + radius + 1].astype(int)
    r, g, b, a = (window[..., i] for i in range(4))
    hue = (g > r + 40) & (g > b + 40) if colour == "green" else (r > g + 60) & (r > b + 60)
    return int((hue & (a > 0)).sum())


def test_upload_and_text_prompt_list_detections_and_draw_each_mask_in_its_colour(ui, images):
    ui.upload(images["scene"])
    expect(ui.page.locator("#image-info")).to_have_text("scene.png · 320×240 · sent as is")
    ui.segment_text("red square", max_detections=3)

    (exchange,) = ui.exchanges
    assert exchange.status == 200, exchange
    sent = exchange.request
    assert base64.b64decode(sent["image"]) == images["scene"].read_bytes()  # it fits: the file's own bytes
    assert {k: v for k, v in sent.items() if k != "image"} == {
        "action": "langsam", "text_prompt": "red square", "box_threshold": 0.3, "text_threshold": 0.25,
        "max_detections": 3}
    masks = exchange.body["masks"]
    assert len(masks) == 3  # random weights pass hundreds of queries: the cap decides
    rows = ui.page.locator(".detection")
    expect(rows).to_have_count(3)
    expect(ui.page.locator("#detections-heading")).to_have_text("Detections (3)")
    for row, mask in zip((rows.nth(i) for i in range(3)), masks):
        expect(row.locator(".label")).to_have_text(mask["label"] or "(no label)")
        expect(row.locator(".det")).to_have_text(f"{mask['detector_score']:.2f}")
        expect(row.locator(".mask")).to_have_text(f"{mask['score']:.2f}")

    decoded = [mask_of(m) for m in masks]
    layer = ui.layer("mask")
    assert np.array_equal(layer[..., 3] > 0, np.logical_or.reduce(decoded))
    for index, colour in enumerate(PALETTE):  # where one mask alone is drawn: its colour (fill or lighter outline)
        alone = decoded[index] & ~np.logical_or.reduce([m for i, m in enumerate(decoded) if i != index])
        assert alone.sum() > 0
        rgb = layer[alone][:, :3].astype(int)
        fill = np.all(np.abs(rgb - colour) <= 3, axis=1)
        outline = np.all(np.abs(rgb - np.minimum(255, np.add(colour, 40))) <= 3, axis=1)
        assert np.all(fill | outline), index
        assert set(np.unique(layer[alone][:, 3][fill])) <= {127, 128}  # the 50% opacity
    expect(ui.page.locator("#last-request")).to_contain_text("langsam:")
    ui.screenshot("text-mode")

    rows.nth(0).locator("input[type=checkbox]").uncheck()
    assert np.array_equal(drawn(ui), decoded[1] | decoded[2])
    before = ui.layer("mask")
    rows.nth(2).hover()
    expect(rows.nth(2)).to_have_class(re.compile("hovered"))
    highlighted = ui.layer("mask")
    only_two = decoded[2] & ~decoded[1]
    assert np.all(highlighted[only_two][:, 3] >= before[only_two][:, 3])  # brought forward, the others dimmed
    assert np.any(highlighted[only_two][:, 3] > before[only_two][:, 3])
    ys, xs = np.nonzero(decoded[1] & ~decoded[2])  # on the image: the topmost visible detection there
    ui.page.mouse.move(*ui.screen(xs[len(xs) // 2] + 0.5, ys[len(ys) // 2] + 0.5))
    expect(rows.nth(1)).to_have_class(re.compile("hovered"))
    expect(rows.nth(2)).not_to_have_class(re.compile("hovered"))

    ui.page.fill("#opacity", "1")
    ui.page.mouse.move(0, 0)
    expect(ui.page.locator("output[for=opacity]")).to_have_text("100%")
    assert set(np.unique(ui.layer("mask")[decoded[2] & ~decoded[1]][:, 3])) == {255}


def test_click_negative_click_box_candidates_undo_redo_and_downloads(ui, images, small_scene):
    ui.upload(images["scene"])
    ui.page.click("#tab-click")
    ui.click_image(80, 84)
    first = ui.exchanges[0]
    assert first.status == 200 and "image" in first.request and "image_id" not in first.request
    assert first.request["points"] == [[80, 84]] and first.request["labels"] == [1]
    assert first.request["multimask"] is True
    masks = first.body["masks"]
    cards = ui.page.locator(".candidate")
    expect(cards).to_have_count(3)
    for i, mask in enumerate(masks):
        expect(cards.nth(i).locator(".caption")).to_have_text(f"#{i + 1} {mask['score']:.2f}")
    assert np.array_equal(drawn(ui), mask_of(masks[0]))
    assert marker_pixels(ui.layer("prompt"), 80, 84, "green") > 0  # the object point, green
    log = ui.page.locator("#request-log tbody tr")
    # Other tests send this scene too: the endpoint may already hold its embedding (docs/API.md §3.5).
    expect(log.first).to_contain_text(encoder_note(first.body))

    ui.click_image(230, 160, button="right")  # not the object
    negative = answered(ui.exchanges, 1)
    assert negative.request["points"] == [[80, 84], [230, 160]] and negative.request["labels"] == [1, 0]
    expect(log.first).to_contain_text(encoder_note(negative.body))
    prompt = ui.layer("prompt")
    assert marker_pixels(prompt, 230, 160, "red") > 0 and marker_pixels(prompt, 230, 160, "green") == 0

    ui.drag_box(40, 30, 130, 140)
    boxed = ui.exchanges[-1]
    assert boxed.status == 200 and boxed.request["points"] == [[80, 84], [230, 160]]
    assert np.allclose(boxed.request["box"], [40, 30, 130, 140], atol=1.0), boxed.request["box"]
    cards.nth(2).click()  # the third candidate
    chosen = mask_of(boxed.body["masks"][2])
    assert np.array_equal(drawn(ui), chosen)
    edge = lambda: int((ui.layer("prompt")[32:138, 40, 3] > 0).sum())  # the box's left side  # noqa: E731
    assert edge() > 20
    ui.screenshot("click-mode")

    sent = len(ui.exchanges)
    ui.page.click("#undo")
    assert np.array_equal(drawn(ui), mask_of(negative.body["masks"][0])) and edge() == 0
    ui.page.locator("#stage").focus()
    ui.page.keyboard.press("Control+z")
    assert np.array_equal(drawn(ui), mask_of(masks[0]))
    ui.page.click("#redo")
    ui.page.keyboard.press("Control+Shift+Z")
    assert np.array_equal(drawn(ui), chosen) and edge() > 20  # back, with the candidate chosen there
    assert len(ui.exchanges) == sent  # undo and redo replay answers, they send nothing

    mask_png = png_pixels(ui.download("#download-mask"))
    assert mask_png.shape[:2] == (240, 320)
    assert np.array_equal(mask_png[..., 0] > 127, chosen)
    x0, y0, x1, y1 = boxed.body["masks"][2]["box"]
    cutout = png_pixels(ui.download("#download-cutout"))
    assert cutout.shape == (y1 - y0, x1 - x0, 4)
    assert np.array_equal(cutout[..., 3] == 255, chosen[y0:y1, x0:x1])
    assert not np.any((cutout[..., 3] > 0) & (cutout[..., 3] < 255))
    inside = cutout[..., 3] == 255
    assert np.array_equal(cutout[..., :3][inside], small_scene[y0:y1, x0:x1][inside])  # the original's pixels
    document = json.loads(ui.download("#download-json"))
    assert document["image"] == {"name": "scene.png", "width": 320, "height": 240}
    assert document["sent"]["scale"] == 1
    assert document["request"] == {k: v for k, v in boxed.request.items() if k not in ("image", "image_id")}
    (saved,) = document["masks"]
    assert saved["mask"] == boxed.body["masks"][2]["mask"] and saved["score"] == boxed.body["masks"][2]["score"]


def test_refining_a_text_detection_sends_its_mask_and_replaces_it(ui, images):
    ui.upload(images["scene"])
    ui.segment_text("blue disc", max_detections=2)
    found = ui.exchanges[0].body["masks"]
    ui.page.locator(".detection").nth(1).locator(".refine").click()
    expect(ui.page.locator("#tab-click")).to_have_attribute("aria-selected", "true")
    expect(ui.page.locator("#refine-banner")).to_contain_text("Refining")
    expect(ui.page.locator("#multimask")).not_to_be_checked()

    ui.click_image(224, 156)
    refine = answered(ui.exchanges, 1)
    assert refine.request["mask_input"] == {"size": found[1]["mask"]["size"], "counts": found[1]["mask"]["counts"]}
    assert refine.request["points"] == [[224, 156]] and refine.request["multimask"] is False
    (refined,) = refine.body["masks"]
    layer = ui.layer("mask")
    assert np.array_equal(layer[..., 3] > 0, mask_of(refined))
    fill = layer[mask_of(refined) & (layer[..., 3] < 200)][:, :3].astype(int)
    assert np.all(np.abs(fill - PALETTE[1]) <= 3)  # drawn in the detection's own colour
    ui.screenshot("refine")

    ui.page.click("#refine-done")
    expect(ui.page.locator("#tab-text")).to_have_attribute("aria-selected", "true")
    row = ui.page.locator(".detection").nth(1)
    expect(row.locator(".label")).to_contain_text("refined")
    expect(row.locator(".mask")).to_have_text(f"{refined['score']:.2f}")
    assert np.array_equal(drawn(ui), mask_of(found[0]) | mask_of(refined))


def test_an_unknown_image_id_is_answered_404_and_the_page_sends_the_image_again(ui, images):
    def forget(route):  # what an evicted embedding (or another instance) looks like to the page
        body = route.request.post_data_json
        if "image_id" in body:
            route.continue_(post_data=json.dumps({**body, "image_id": "0" * 32}))
        else:
            route.continue_()

    ui.page.route("**/invocations", forget)
    ui.upload(images["scene"])
    ui.page.click("#tab-click")
    ui.click_image(80, 84)
    ui.page.locator("#stage").focus()
    ui.page.keyboard.press("Enter")  # the keyboard cursor starts at the centre
    ui.wait_idle()

    first, unknown, again = ui.exchanges
    assert "image" in first.request and first.status == 200
    assert unknown.status == 404 and unknown.body["error"]["code"] == "not_found"
    assert "send the image" in unknown.body["error"]["message"]
    assert "image" in again.request and "image_id" not in again.request and again.status == 200
    assert again.request["points"] == [[80, 84], [160, 120]] and again.request["labels"] == [1, 1]
    expect(ui.page.locator("#error")).to_be_hidden()  # recovered, so nothing to report
    log = ui.page.locator("#request-log tbody tr")
    expect(log).to_have_count(3)
    expect(log.nth(1)).to_contain_text("404 not_found")
    expect(log.nth(1)).to_contain_text("image sent again")
    assert np.array_equal(drawn(ui), mask_of(again.body["masks"][0]))


def test_errors_are_shown_plainly_and_the_endpoint_setting_is_remembered(ui, images, tmp_path):
    error = ui.page.locator("#error")
    (tmp_path / "notes.png").write_text("not a picture")
    ui.page.set_input_files("#file-input", str(tmp_path / "notes.png"))
    expect(error.locator(".message")).to_have_text(
        "notes.png is not an image this browser can read (JPEG, PNG, WebP, GIF, BMP).")
    expect(ui.page.locator("#text-form button[type=submit]")).to_be_disabled()  # still no image to segment

    ui.upload(images["too-big"])
    ui.segment_text("anything")
    (exchange,) = ui.exchanges
    assert exchange.status == 413
    expect(error).to_be_visible()
    expect(error.locator(".status")).to_have_text("413 payload_too_large")
    expect(error.locator(".message")).to_have_text(exchange.body["error"]["message"])
    expect(error.locator(".request-id")).to_have_text(f"request id {exchange.body['error']['request_id']}")
    expect(ui.page.locator(".detection")).to_have_count(0)
    ui.screenshot("error")

    url = f"http://127.0.0.1:{free_port()}/invocations"  # nothing listens there
    ui.page.click("#settings-open")
    ui.page.check("input[name=endpoint][value=custom]")
    ui.page.fill("#endpoint-url", url)
    ui.page.click("#settings button[type=submit]")
    health = ui.page.locator("#health")
    expect(health).to_have_text(re.compile(r"127\.0\.0\.1:\d+ · unreachable"))
    ui.page.reload()
    expect(health).to_have_text(re.compile(r"127\.0\.0\.1:\d+ · unreachable"))
    assert json.loads(ui.page.evaluate("() => localStorage.getItem('segserve.settings')"))["endpoint"] == url
    ui.upload(images["scene"])
    ui.segment_text("anything")
    expect(error.locator(".message")).to_contain_text(f"Could not reach {url}")


def test_a_12_megapixel_photo_is_sent_downscaled_and_its_mask_downloads_at_full_size(ui, tmp_path):
    photo = tmp_path / "phone.jpg"
    Image.fromarray(make_scene(3000, 4000)).save(photo, quality=90)
    ui.page.click("#settings-open")
    ui.page.fill("#max-side", "256")  # the test deployment refuses images over 100,000 pixels
    ui.page.click("#settings button[type=submit]")
    ui.upload(photo)
    expect(ui.page.locator("#image-info")).to_have_text(
        "phone.jpg · 4000×3000 · sent as 256×192; downloads are full size")
    ui.page.click("#tab-click")
    ui.click_image(128, 96)

    (exchange,) = ui.exchanges
    sent = Image.open(io.BytesIO(base64.b64decode(exchange.request["image"])))
    assert (sent.format, sent.size) == ("JPEG", (256, 192))
    assert exchange.body["image"]["width"] == 256 and exchange.body["image"]["height"] == 192
    small = mask_of(exchange.body["masks"][0])
    full = png_pixels(ui.download("#download-mask"))[..., 0] > 127
    assert full.shape == (3000, 4000)
    # Each sent pixel covers ~15.6x15.6 full-size pixels. Where the sent mask is the same over a 5x5
    # neighbourhood, smoothing cannot change it: the full-size mask must agree at that pixel's centre.
    windows = np.lib.stride_tricks.sliding_window_view(np.pad(small, 2, mode="edge"), (5, 5))
    uniform = windows.all(axis=(2, 3)) | ~windows.any(axis=(2, 3))
    ys, xs = np.nonzero(uniform)
    assert len(ys) > 1000, len(ys)
    centres = full[((ys + 0.5) * 3000 / 192).astype(int), ((xs + 0.5) * 4000 / 256).astype(int)]
    assert np.array_equal(centres, small[ys, xs])


def test_a_narrow_window_stacks_the_controls_under_the_image(browser, server, images):
    context, ui = new_page(browser, server, width=420, height=900)
    try:
        ui.open()
        ui.upload(images["scene"])
        sizes = ui.page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
        assert sizes[0] <= sizes[1], sizes  # nothing sticks out sideways
        stage = ui.page.locator("#stage").bounding_box()
        panel = ui.page.locator(".panel").bounding_box()
        assert panel["y"] >= stage["y"] + stage["height"]
        ui.screenshot("narrow")
    finally:
        context.close()


def test_an_image_url_the_page_may_not_read_is_fetched_by_the_endpoint(ui, image_server):
    url = image_server["url"] + "/scene.png"  # another origin without CORS headers
    ui.page.fill("#url-input", url)
    ui.page.click("#url-form button")
    expect(ui.page.locator("#image-info")).to_have_text(
        "scene.png · 320×240 · fetched by the endpoint itself (this page may not read it, so no cut-outs)")
    ui.page.click("#tab-click")
    ui.click_image(80, 84)
    (exchange,) = ui.exchanges
    assert exchange.request["image_url"] == url and "image" not in exchange.request and exchange.status == 200
    assert np.array_equal(drawn(ui), mask_of(exchange.body["masks"][0]))
    expect(ui.page.locator("#download-cutout")).to_be_disabled()
    mask_png = png_pixels(ui.download("#download-mask"))
    assert np.array_equal(mask_png[..., 0] > 127, mask_of(exchange.body["masks"][0]))


def test_drop_and_paste_load_an_image(ui, images):
    dispatch = """async ([kind, b64]) => {
      const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
      const data = new DataTransfer();
      data.items.add(new File([bytes], kind + '.png', {type: 'image/png'}));
      const event = kind === 'dropped'
        ? new DragEvent('drop', {dataTransfer: data, bubbles: true, cancelable: true})
        : new ClipboardEvent('paste', {clipboardData: data, bubbles: true, cancelable: true});
      document.querySelector(kind === 'dropped' ? '#dropzone' : 'body').dispatchEvent(event);
    }"""
    scene = base64.b64encode(images["scene"].read_bytes()).decode()
    ui.page.evaluate(dispatch, ["dropped", scene])
    expect(ui.page.locator("#image-info")).to_have_text("dropped.png · 320×240 · sent as is")
    ui.page.evaluate(dispatch, ["pasted", base64.b64encode(images["too-big"].read_bytes()).decode()])
    expect(ui.page.locator("#image-info")).to_have_text("pasted image · 400×300 · sent as is")
    image = ui.layer("image")
    assert image.shape == (300, 400, 4) and np.array_equal(image[..., :3], np.array(Image.open(images["too-big"])))


def test_a_503_that_names_its_wait_is_retried_after_it(ui, images):
    busy = []

    def restarting_once(route):  # the answer segserve's router gives while a model's worker restarts
        if not busy and route.request.post_data_json.get("action") == "langsam":
            busy.append(route.request.post_data_json)
            route.fulfill(status=503, headers={"Retry-After": "2"}, content_type="application/json",
                          body=json.dumps({"error": {
                              "code": "model_restarting", "retry_after_s": 2, "request_id": "r-1",
                              "message": "model 'langsam' stopped while serving this request and is restarting; "
                                         "retry after 2 s"}}))
        else:
            route.continue_()

    ui.page.route("**/invocations", restarting_once)
    ui.upload(images["scene"])
    ui.page.fill("#prompt", "red square")
    ui.page.fill("#max-detections", "1")
    ui.page.click("#text-form button[type=submit]")
    expect(ui.page.locator("#busy-text")).to_have_text("Endpoint busy (model_restarting): retrying in 2 s…")
    ui.wait_idle()
    refused, served = ui.exchanges
    assert refused.status == 503 and served.status == 200 and served.request == refused.request
    expect(ui.page.locator(".detection")).to_have_count(1)
    expect(ui.page.locator("#error")).to_be_hidden()
    expect(ui.page.locator("#request-log tbody tr").nth(1)).to_contain_text("retried after 2 s")

"""The web UI's SAM 3 choice in Chromium: text, example boxes, a click on a detection refined by SAM 3's tracker;
and a click on the image in text mode segmenting the object there. Same live server and browser as
test_serving_web_ui.py (its fixtures)."""

from __future__ import annotations

import numpy as np
import pytest
from playwright.sync_api import expect

from tests.conftest import make_scene
from tests.integration.browser import mask_of
from tests.integration.serving import encode
from tests.integration.test_serving_web_ui import browser, drawn, images, new_page, ui  # noqa: F401 (fixtures)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def sam3_picture(tmp_path_factory):
    """A picture no other test sends: its first SAM 3 request must be the one that encodes it."""
    path = tmp_path_factory.mktemp("ui-sam3") / "sam3-scene.png"
    path.write_bytes(encode(make_scene(240, 320, seed=7), "PNG"))
    return path


def choose_sam3(ui, score_threshold: str = "0.02") -> None:
    ui.page.select_option("#text-model", "sam3")
    ui.page.fill("#score-threshold", score_threshold)
    expect(ui.page.locator("#box-threshold")).to_be_hidden()
    expect(ui.page.locator("#click-model")).to_have_text("Clicks are answered by SAM 3's tracker.")


def test_sam3_text_then_example_boxes_run_on_one_encoding(ui, sam3_picture):
    ui.upload(sam3_picture)
    choose_sam3(ui)
    ui.segment_text("red square. blue disc", max_detections=3)
    first = ui.exchanges[0]
    assert first.status == 200, first
    assert {k: v for k, v in first.request.items() if k != "image"} == {
        "action": "sam3", "text_prompt": "red square. blue disc", "score_threshold": 0.02, "max_detections": 3}
    assert first.body["cache"] == "miss" and "sam3_vision_encoder" in first.body["timings_ms"]
    rows = ui.page.locator(".detection")
    expect(rows).to_have_count(3)
    for index, mask in enumerate(first.body["masks"]):
        expect(rows.nth(index).locator(".label")).to_have_text(mask["label"])
        expect(rows.nth(index).locator(".mask-score")).to_have_text("score")
        expect(rows.nth(index).locator(".detector")).to_have_count(0)  # SAM 3 has no separate detector score
    assert np.array_equal(drawn(ui), np.logical_or.reduce([mask_of(m) for m in first.body["masks"]]))
    ui.screenshot("sam3-text")

    ui.drag_box(40, 40, 140, 130)  # an example: more like this
    ui.page.keyboard.down("Alt")
    ui.drag_box(200, 120, 300, 220)  # Alt-drag: not this
    ui.page.keyboard.up("Alt")
    expect(ui.page.locator("#exemplars")).to_have_text("Example boxes: 1 like this, 1 not this.")
    like, unlike = ui.exchanges[1], ui.exchanges[2]
    for exchange in (like, unlike):
        assert exchange.status == 200 and "image_id" in exchange.request and "image" not in exchange.request
        assert exchange.body["cache"] == "hit" and "sam3_vision_encoder" not in exchange.body["timings_ms"]
    assert like.request["exemplar_boxes"] == [[40, 40, 140, 130]] and like.request["exemplar_labels"] == [1]
    assert unlike.request["exemplar_labels"] == [1, 0] and unlike.request["text_prompt"] == "red square. blue disc"
    expect(ui.page.locator("#tab-text")).to_have_attribute("aria-selected", "true")  # a drag stays in text mode
    ui.screenshot("sam3-exemplars")

    ui.page.click("#clear-exemplars")
    expect(ui.page.locator("#exemplars")).to_have_text("No example boxes.")


def test_a_click_on_a_sam3_detection_refines_it_with_sam3s_tracker(ui, images):
    ui.upload(images["scene"])
    choose_sam3(ui)
    ui.segment_text("blue disc", max_detections=1)
    (found,) = ui.exchanges[0].body["masks"]
    ys, xs = np.nonzero(mask_of(found))
    x, y = float(xs[len(xs) // 2]) + 0.5, float(ys[len(ys) // 2]) + 0.5
    ui.click_image(x, y)  # on the detection, in text mode: refine it
    expect(ui.page.locator("#tab-click")).to_have_attribute("aria-selected", "true")
    expect(ui.page.locator("#refine-banner")).to_contain_text("Refining")
    refine = ui.exchanges[-1]
    assert refine.status == 200, refine
    assert refine.request["action"] == "sam3" and refine.request["image_id"] == ui.exchanges[0].body["image"]["id"]
    assert refine.request["mask_input"] == {"size": found["mask"]["size"], "counts": found["mask"]["counts"]}
    assert refine.body["mode"] == "click" and refine.body["cache"] == "hit"
    assert "sam3_tracker" in refine.body["timings_ms"] and "sam3_vision_encoder" not in refine.body["timings_ms"]
    (refined,) = refine.body["masks"]
    assert np.array_equal(drawn(ui), mask_of(refined))
    ui.screenshot("sam3-refine")
    ui.page.click("#refine-done")
    expect(ui.page.locator(".detection").nth(0).locator(".label")).to_contain_text("refined")


def test_a_click_on_the_image_in_text_mode_segments_the_object_there(ui, images):
    ui.upload(images["scene"])
    expect(ui.page.locator("#tab-text")).to_have_attribute("aria-selected", "true")  # the page opens in text mode
    ui.click_image(80, 85)
    expect(ui.page.locator("#tab-click")).to_have_attribute("aria-selected", "true")
    (click,) = [e for e in ui.exchanges if e.action == "sam2" and "points" in e.request]
    assert click.status in (200, 404) and click.request["points"] == [[80, 85]] and click.request["labels"] == [1]
    expect(ui.page.locator("#click-model")).to_have_text("Clicks are answered by SAM2.")
    assert drawn(ui).any()

"""Clicks on one encoding, without TorchServe: image_id requests, re-sent images, langsam sharing the sam2 cache.

Each test builds its own cache, so hits and misses here never depend on the order the tests run in.
"""

from __future__ import annotations

import base64
import json

import pytest

from segserve.inference.invocation import Invoker
from segserve.inference.sam2_client import Sam2Client
from segserve.inference.services import LangSamService, Sam2Service
from segserve.media.image_loading import ImageLoader
from segserve.models.embedding_cache import LruEmbeddingCache
from tests.unit.test_invocation import png_bytes, sam2_model

MIB = 1024 * 1024
CLICK = {"x": 200, "y": 150}
LANGSAM = {"text_prompt": "black jeans", "box_threshold": 0.0, "text_threshold": 0.0, "max_detections": 2}


@pytest.fixture
def endpoint(sam2_pipeline, detector):
    """sam2 with a 256 MiB cache, and langsam asking it for masks: call(payload) → (status, body)."""
    loader = ImageLoader()
    cache = LruEmbeddingCache(256 * MIB)
    sam2 = Sam2Service(sam2_pipeline, loader, cache)
    langsam = LangSamService(detector, Sam2Client(sam2_model(sam2), lambda image_id: "sam2"), loader)
    invoker = Invoker([sam2, langsam], sam2_pipeline.runtime)

    def call(payload: dict):
        reply = invoker(json.dumps(payload).encode(), "application/json", {}, "req-1")
        return reply.status, json.loads(reply.body)

    call.cache = cache
    return call


@pytest.fixture(scope="module")
def image_b64(scene):
    return base64.b64encode(png_bytes(scene)).decode()


def test_a_second_click_by_image_id_or_with_the_image_again_runs_no_encoder(endpoint, image_b64):
    status, first = endpoint({"action": "sam2", "image": image_b64, **CLICK})
    assert status == 200 and first["cache"] == "miss"
    assert "sam2_image_encoder" in first["timings_ms"]
    image_id = first["image"]["id"]

    status, by_id = endpoint({"action": "sam2", "image_id": image_id, **CLICK})
    assert status == 200, by_id
    assert by_id["cache"] == "hit" and by_id["image"] == first["image"]
    assert "sam2_image_encoder" not in by_id["timings_ms"] and "load_image" not in by_id["timings_ms"]
    assert by_id["masks"] == first["masks"]  # the same embedding, the same prompt: the same masks

    status, again = endpoint({"action": "sam2", "image": image_b64, **CLICK})
    assert status == 200 and again["cache"] == "hit"
    assert "load_image" in again["timings_ms"] and "sam2_image_encoder" not in again["timings_ms"]
    stats = endpoint.cache.stats()
    assert (stats.hits, stats.misses, stats.entries) == (2, 1, 1)


def test_an_unknown_image_id_is_404_and_says_to_send_the_image_again(endpoint):
    status, body = endpoint({"action": "sam2", "image_id": "0" * 32, **CLICK})
    assert status == 404
    assert body["error"]["code"] == "not_found" and body["error"]["field"] == "image_id"
    assert "send the image again" in body["error"]["message"]


def test_an_evicted_image_is_404_until_it_is_sent_again(sam2_pipeline, image_b64, scene):
    cache = LruEmbeddingCache(1)  # smaller than any entry: nothing is ever kept
    invoker = Invoker([Sam2Service(sam2_pipeline, ImageLoader(), cache)], sam2_pipeline.runtime)
    first = json.loads(invoker(json.dumps({"action": "sam2", "image": image_b64, **CLICK}).encode(),
                               "application/json", {}).body)
    reply = invoker(json.dumps({"action": "sam2", "image_id": first["image"]["id"], **CLICK}).encode(),
                    "application/json", {})
    assert reply.status == 404 and first["cache"] == "miss"


def test_by_image_id_prompts_are_checked_against_the_cached_size_and_images_render(endpoint, image_b64):
    status, first = endpoint({"action": "sam2", "image": image_b64, "boxes": []})  # encode only, e.g. on upload
    assert status == 200 and first["masks"] == [] and first["cache"] == "miss"
    assert "sam2_image_encoder" in first["timings_ms"] and "sam2_mask_decoder" not in first["timings_ms"]
    image_id = first["image"]["id"]
    status, outside = endpoint({"action": "sam2", "image_id": image_id, "x": 641, "y": 1})
    assert status == 400 and "outside the 640x480 image" in outside["error"]["message"]
    status, body = endpoint({"action": "sam2", "image_id": image_id, **CLICK, "multimask": False,
                             "return_images": ["overlay", "original"]})
    assert status == 200 and body["cache"] == "hit" and len(body["masks"]) == 1
    assert {"overlay", "original"} <= set(body)
    assert base64.b64decode(body["original"]) == png_bytes_of(endpoint, image_id)


def png_bytes_of(endpoint, image_id: str) -> bytes:
    """What the cache holds for an id, as the PNG `original` renders it."""
    from segserve.media.images import encode_png

    return encode_png(endpoint.cache.get(image_id).pixels)


def test_boxes_give_one_mask_each_in_box_order(endpoint, image_b64):
    boxes = [[100, 90, 300, 250], [380, 250, 520, 400], [10, 10, 10, 10]]  # a degenerate box too
    status, body = endpoint({"action": "sam2", "image": image_b64, "boxes": boxes})
    assert status == 200 and len(body["masks"]) == 3
    status, alone = endpoint({"action": "sam2", "image_id": body["image"]["id"], "box": boxes[1],
                              "multimask": False})
    assert alone["masks"][0]["area"] == body["masks"][1]["area"]  # entry i is box i


def test_boxes_go_alone(endpoint, image_b64):
    status, body = endpoint({"action": "sam2", "image": image_b64, "boxes": [[1, 1, 5, 5]], "x": 2, "y": 2})
    assert status == 400 and "boxes go alone" in body["error"]["message"]


def test_text_then_clicks_share_one_encoding(endpoint, image_b64):
    status, text = endpoint({"action": "langsam", "image": image_b64, **LANGSAM})
    assert status == 200, text
    assert text["cache"] == "miss" and "sam2_image_encoder" in text["timings_ms"]
    assert "grounding_dino" in text["timings_ms"] and "sam2_load_image" in text["timings_ms"]
    assert len(text["masks"]) == 2 and all("label" in entry for entry in text["masks"])

    status, click = endpoint({"action": "sam2", "image_id": text["image"]["id"], **CLICK})
    assert status == 200 and click["cache"] == "hit"
    assert "sam2_image_encoder" not in click["timings_ms"]


def test_langsam_by_image_id_detects_on_the_cached_pixels(endpoint, image_b64):
    status, click = endpoint({"action": "sam2", "image": image_b64, **CLICK})
    status, by_id = endpoint({"action": "langsam", "image_id": click["image"]["id"], **LANGSAM})
    status, sent = endpoint({"action": "langsam", "image": image_b64, **LANGSAM})
    assert status == 200, by_id
    assert by_id["cache"] == sent["cache"] == "hit" and "sam2_image_encoder" not in by_id["timings_ms"]
    assert by_id["masks"] == sent["masks"]  # the same pixels: the same detections and masks


def test_langsam_with_an_unknown_image_id_is_404(endpoint):
    status, body = endpoint({"action": "langsam", "image_id": "f" * 32, **LANGSAM})
    assert status == 404 and "send the image again" in body["error"]["message"]

"""The sam3 action without TorchServe: concept and click answers, the cache by image id, and bad input → 4xx."""

from __future__ import annotations

import base64
import json

import pytest

from segserve.contract.responses import Sam3Response
from segserve.inference.invocation import Invoker
from segserve.inference.sam3_service import Sam3Service
from segserve.media.image_loading import ImageLoader
from segserve.media.masks import decode_rle
from segserve.models.embedding_cache import LruEmbeddingCache
from tests.unit.test_invocation import png_bytes

MIB = 1024 * 1024
TEXT = {"text_prompt": "dog", "score_threshold": 0.02}


@pytest.fixture
def call(sam3_pipeline):
    """sam3 with its own 256 MiB cache: call(payload) → (status, body)."""
    service = Sam3Service(sam3_pipeline, ImageLoader(), LruEmbeddingCache(256 * MIB))
    invoker = Invoker([service], sam3_pipeline.runtime, model={"name": "sam3", "version": "1.0"})

    def call(payload: dict):
        reply = invoker(json.dumps(payload).encode(), "application/json", {}, "req-1")
        return reply.status, json.loads(reply.body)

    return call


@pytest.fixture(scope="module")
def image_b64(scene):
    return base64.b64encode(png_bytes(scene)).decode()


def test_text_answer_has_langsam_s_shape_and_validates(call, image_b64, scene):
    status, body = call({"action": "sam3", "image": image_b64, **TEXT, "max_detections": 4})
    assert status == 200, body
    Sam3Response.model_validate(body)
    assert body["mode"] == "concept" and body["cache"] == "miss" and body["text_prompt"] == "dog"
    assert body["image"]["width"] == scene.shape[1] and body["image"]["id"]
    masks = body["masks"]
    assert len(masks) == 4
    assert [m["score"] for m in masks] == sorted((m["score"] for m in masks), reverse=True)
    for mask in masks:
        assert mask["label"] == "dog" and len(mask["detector_box"]) == 4
        assert decode_rle(mask["mask"]).shape == scene.shape[:2]
        assert mask["area"] == int(decode_rle(mask["mask"]).sum())
    assert {"load_image", "sam3_vision_encoder", "sam3_text_encoder", "sam3_detector", "total"} <= set(body["timings_ms"])


def test_a_second_phrase_and_a_click_by_image_id_run_no_vision_encoder(call, image_b64):
    _, first = call({"action": "sam3", "image": image_b64, **TEXT})
    image_id = first["image"]["id"]
    status, second = call({"action": "sam3", "image_id": image_id, "text_prompt": "red car. tree",
                           "score_threshold": 0.02, "max_detections": 100})
    assert status == 200 and second["cache"] == "hit"
    assert "sam3_vision_encoder" not in second["timings_ms"]
    assert {m["label"] for m in second["masks"]} == {"red car", "tree"}
    status, click = call({"action": "sam3", "image_id": image_id, "x": 200, "y": 150})
    assert status == 200, click
    assert click["mode"] == "click" and click["cache"] == "hit" and "text_prompt" not in click
    assert len(click["masks"]) == 3 and "label" not in click["masks"][0]
    assert "sam3_vision_encoder" not in click["timings_ms"] and "sam3_tracker" in click["timings_ms"]
    status, single = call({"action": "sam3", "image_id": image_id, "points": [[200, 150], [400, 300]],
                           "labels": [1, 0], "multimask": False, "mask_input": click["masks"][0]["mask"]})
    assert status == 200 and len(single["masks"]) == 1, single


def test_exemplar_boxes_alone_have_no_label(call, image_b64):
    status, body = call({"action": "sam3", "image": image_b64, "exemplar_boxes": [[100, 90, 220, 250]],
                         "score_threshold": 0.02, "max_detections": 2, "mask_format": "polygons"})
    assert status == 200, body
    assert [m["label"] for m in body["masks"]] == [None, None]
    assert body["masks"][0]["mask"]["format"] == "polygons"


@pytest.mark.parametrize("payload, status, words", [
    ({}, 400, "needs a prompt"),
    ({"text_prompt": "dog", "x": 3, "y": 4}, 400, "separate requests"),
    ({"text_prompt": " . . "}, 400, "no words"),
    ({"text_prompt": ""}, 400, "text_prompt"),
    ({"exemplar_boxes": [[10, 10, 5000, 50]]}, 400, "exemplar_boxes"),
    ({"points": [[900, 10]], "labels": [1]}, 400, "outside the 640x480 image"),
    ({"exemplar_boxes": [[10, 10, 50, 50]], "exemplar_labels": [1, 0]}, 400, "exemplar_labels"),
    ({"text_prompt": "dog", "multimask": True}, 400, "multimask"),
])
def test_bad_requests_are_4xx_with_a_message(call, image_b64, payload, status, words):
    got, body = call({"action": "sam3", "image": image_b64, **payload})
    assert got == status, body
    assert words in body["error"]["message"]
    assert body["error"]["request_id"] == "req-1"


def test_an_unknown_image_id_is_a_404(call):
    status, body = call({"action": "sam3", "image_id": "0" * 32, "text_prompt": "dog"})
    assert status == 404 and body["error"]["code"] == "not_found" and "not cached" in body["error"]["message"], body

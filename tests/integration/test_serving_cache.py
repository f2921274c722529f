"""The embedding cache on a live endpoint: clicks after the first run no encoder, by image_id or with the image.

Each test uses a picture no other test sends, so its first request is a miss whatever ran before it.
"""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.conftest import make_scene
from tests.integration.serving import assert_error, b64, check_segmentation, encode, ok_json

pytestmark = pytest.mark.integration

CLICK = {"x": 80, "y": 85, "multimask": False}


def picture(seed: int) -> str:
    return b64(encode(make_scene(240, 320, seed=seed), "PNG"))


def ran_encoder(body: dict) -> bool:
    return "sam2_image_encoder" in body["timings_ms"]


def test_a_second_click_by_image_id_or_with_the_image_again_runs_no_encoder(server):
    image = picture(seed=11)
    first = ok_json(server.invoke({"action": "sam2", "image": image, **CLICK}))
    assert first["cache"] == "miss" and ran_encoder(first)

    by_id = ok_json(server.invoke({"action": "sam2", "image_id": first["image"]["id"], **CLICK}))
    check_segmentation(by_id, "sam2")
    assert by_id["cache"] == "hit" and not ran_encoder(by_id)
    assert set(by_id["timings_ms"]) == {"sam2_mask_decoder", "encode_masks", "total"}  # only the stages that ran
    assert by_id["masks"] == first["masks"]

    again = ok_json(server.invoke({"action": "sam2", "image": image, "x": 200, "y": 150}))
    assert again["cache"] == "hit" and not ran_encoder(again) and "load_image" in again["timings_ms"]


def test_concurrent_first_requests_on_one_new_image_encode_it_once(server):
    """Single flight: four clients send the same new picture at once (a sam2 click and langsam's masks, through
    the router). The sam2 worker takes them one at a time, so the first encodes and the rest find it cached."""
    image = picture(seed=21)
    text = {"action": "langsam", "image": image, "text_prompt": "red box", "box_threshold": 0.0,
            "text_threshold": 0.0, "max_detections": 1}
    payloads = [{"action": "sam2", "image": image, **CLICK}, text, {"action": "sam2", "image": image, "x": 5, "y": 5},
                text]
    with ThreadPoolExecutor(len(payloads)) as pool:
        answers = [ok_json(reply) for reply in pool.map(server.invoke, payloads)]
    assert len({answer["image"]["id"] for answer in answers}) == 1
    assert sorted(answer["cache"] for answer in answers) == ["hit", "hit", "hit", "miss"]
    assert sum(ran_encoder(answer) for answer in answers) == 1


def test_an_unknown_image_id_is_404_saying_to_send_the_image_again(server):
    error = assert_error(server.invoke({"action": "sam2", "image_id": "0123456789abcdef" * 2, **CLICK}),
                         404, "not_found", "image_id")
    assert "send the image again" in error["message"]


def test_a_langsam_answers_image_id_takes_clicks_without_the_encoder(server):
    text = ok_json(server.invoke({"action": "langsam", "image": picture(seed=12), "text_prompt": "red box",
                                  "box_threshold": 0.0, "text_threshold": 0.0, "max_detections": 2}))
    check_segmentation(text, "langsam")
    assert text["cache"] == "miss" and ran_encoder(text) and "grounding_dino" in text["timings_ms"]
    click = ok_json(server.invoke({"action": "sam2", "image_id": text["image"]["id"], **CLICK}))
    assert click["cache"] == "hit" and not ran_encoder(click)
    # ...and text again on the clicked image, by its id: the detector gets the cached pixels, SAM2 no encoder.
    more = ok_json(server.invoke({"action": "langsam", "image_id": text["image"]["id"], "text_prompt": "red box",
                                  "box_threshold": 0.0, "text_threshold": 0.0, "max_detections": 2}))
    assert more["cache"] == "hit" and not ran_encoder(more) and more["masks"] == text["masks"]


def test_cache_hits_misses_and_bytes_are_prometheus_metrics(server):
    assert ok_json(server.invoke({"action": "sam2", "image": picture(seed=13), **CLICK}))["cache"] == "miss"
    text = requests.get(server.metrics + "/metrics", timeout=10).text

    def value(metric: str) -> float:
        found = re.search(rf'^{metric}\{{ModelName="sam2",[^}}]*\}}\s+(\S+)$', text, re.M)
        assert found, f"{metric} is not exported:\n{text[:3000]}"
        return float(found.group(1))

    assert value("SegmentationCacheMisses") >= 1 and value("SegmentationCacheEntries") >= 1
    assert value("SegmentationCacheBytes") > 16 * 1024 * 1024  # at least one SAM2 embedding

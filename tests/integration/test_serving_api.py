"""The public API of a live endpoint (serving/entrypoint.sh → TorchServe → router → langsam/sam2), over HTTP.

Readiness, every action, every input form, every output format and JSON Lines batches, all through
POST /invocations as SageMaker sends them. Each image-encoding request costs ~2 s of CPU, so each test
checks as much of one answer as it can instead of sending more requests.
"""

from __future__ import annotations

import json

import pytest

from tests.integration.conftest import ROUTER_WORKERS, S3_BUCKET, S3_KEY
from tests.integration.serving import (
    SCENE_SIZE, b64, check_error_object, check_segmentation, ok_json, png_size,
)

pytestmark = pytest.mark.integration

POINT = {"x": 80, "y": 85}  # inside the red rectangle of the scene
LANGSAM = {"box_threshold": 0.0, "text_threshold": 0.0, "max_detections": 2}  # random weights: take the top 2


@pytest.fixture(scope="module")
def sam2_base64(server, scene_png) -> dict:
    """One sam2 answer several tests check: `image` as plain base64, point prompt, the default RLE masks."""
    return ok_json(server.invoke({"action": "sam2", "image": b64(scene_png), **POINT}))


# --- readiness ----------------------------------------------------------------------------------------------


def test_ping_is_503_until_every_model_has_loaded_then_200(server):
    samples = server.startup_pings
    *before, ready = samples
    assert before, "the first /ping that answered was already 200: it must wait for the models"
    assert all(s.status == 503 and s.body["status"] == "Unhealthy" for s in before), [s.status for s in before]
    # Seen while starting: a model registered by the entrypoint, its worker still loading its weights.
    loading = {"registered": True, "workers": 1, "ready_workers": 0}
    assert any(loading in (s.body["models"]["langsam"], s.body["models"]["sam2"]) for s in before), before
    assert ready.status == 200
    assert ready.body == {
        "status": "Healthy",
        "models": {
            "router": {"registered": True, "workers": ROUTER_WORKERS, "ready_workers": ROUTER_WORKERS},
            "langsam": {"registered": True, "workers": 1, "ready_workers": 1},
            "sam2": {"registered": True, "workers": 1, "ready_workers": 1},
            "sam3": {"registered": True, "workers": 1, "ready_workers": 1},
        },
    }
    print(f"\n/ping: first answer {before[0].at:.1f} s (503), 200 at {ready.at:.1f} s after the entrypoint started")


def test_ping_action_lists_every_model_with_ready_workers(server):
    body = ok_json(server.invoke({"action": "ping"}))
    assert body == {
        "action": "ping",
        "status": "ready",
        "models": {
            "router": {"registered": True, "workers": ROUTER_WORKERS, "ready_workers": ROUTER_WORKERS},
            "langsam": {"registered": True, "workers": 1, "ready_workers": 1},
            "sam2": {"registered": True, "workers": 1, "ready_workers": 1},
            "sam3": {"registered": True, "workers": 1, "ready_workers": 1},
        },
    }


def test_a_json_body_without_content_type_is_read_as_json(server):
    # curl -d without -H posts form-encoded; a client that sends no type at all still gets JSON read.
    reply = server.invoke(data=b'{"action": "ping"}', content_type=None)
    assert ok_json(reply)["status"] == "ready"


# --- actions, input forms and output formats -----------------------------------------------------------------


def test_sam2_with_a_base64_image_answers_rle_masks(sam2_base64, small_scene):
    masks = check_segmentation(sam2_base64, "sam2", mask_format="rle")
    assert len(masks) == 3  # multimask by default, best first
    assert [m["score"] for m in masks] == sorted((m["score"] for m in masks), reverse=True)
    assert {"load_image", "sam2_mask_decoder"} <= set(sam2_base64["timings_ms"])
    # timings list only the stages that ran: the encoder exactly when the embedding was not cached
    assert ("sam2_image_encoder" in sam2_base64["timings_ms"]) == (sam2_base64["cache"] == "miss")
    from pycocotools import mask as coco_mask  # the format clients decode with

    rle = masks[0]["mask"]
    decoded = coco_mask.decode({"size": rle["size"], "counts": rle["counts"].encode()})
    assert decoded.shape == small_scene.shape[:2] and int(decoded.sum()) == masks[0]["area"]


def test_langsam_with_a_base64_image(server, scene_png, sam2_base64):
    body = ok_json(server.invoke({"action": "langsam", "image": b64(scene_png), "text_prompt": "red box", **LANGSAM}))
    masks = check_segmentation(body, "langsam")
    assert body["text_prompt"] == "red box"
    assert 1 <= len(masks) <= 2
    # sam2 clicked this image before: its box masks decode on that encoding (the one SAM2 owner's cache)
    assert body["image"]["id"] == sam2_base64["image"]["id"] and body["cache"] == "hit"
    assert "grounding_dino" in body["timings_ms"] and "sam2_image_encoder" not in body["timings_ms"]


def test_a_data_url_image_with_png_masks(server, scene_png, sam2_base64):
    body = ok_json(server.invoke({
        "action": "sam2", "image": "data:image/png;base64," + b64(scene_png), **POINT, "mask_format": "png",
        "multimask": False,
    }))
    (mask,) = check_segmentation(body, "sam2", mask_format="png")
    assert body["image"]["id"] == sam2_base64["image"]["id"]  # same pixels, same id, however they were sent


def test_the_seed_form_with_an_http_image_url_and_return_images(server, image_server, sam2_base64):
    """The seed API's request: {"action": "sam2", "image_url", "x", "y"}, here with its three PNGs."""
    url = image_server["url"] + "/scene.png"
    body = ok_json(server.invoke({"action": "sam2", "image_url": url, **POINT, "return_images": True}))
    check_segmentation(body, "sam2")
    assert "/scene.png" in image_server["paths"]  # the worker fetched it from 127.0.0.1
    assert body["image"]["id"] == sam2_base64["image"]["id"]
    for name in ("original", "overlay", "mask_only"):
        assert png_size(body[name]) == SCENE_SIZE, name


def test_an_s3_image_url_with_json_charset_and_polygons(server):
    body = ok_json(server.invoke(
        {"action": "sam2", "image_url": f"s3://{S3_BUCKET}/{S3_KEY}", "box": [40, 40, 120, 130],
         "multimask": False, "mask_format": "polygons"},
        content_type="application/json; charset=utf-8",
    ))
    (mask,) = check_segmentation(body, "sam2", mask_format="polygons")
    assert mask["mask"]["polygons"], "an empty mask has nothing to trace"
    assert "original" not in body


def test_a_raw_png_body_with_custom_attributes_for_langsam(server, scene_png):
    reply = server.invoke(data=scene_png, content_type="image/png", headers={
        "X-Amzn-SageMaker-Custom-Attributes": "action=langsam;text_prompt=black jeans;box_threshold=0;"
                                              "text_threshold=0;max_detections=1;mask_format=png"})
    body = ok_json(reply)
    (mask,) = check_segmentation(body, "langsam", mask_format="png")
    assert body["text_prompt"] == "black jeans"
    assert mask["label"]


def test_a_raw_jpeg_body_with_custom_attributes_for_sam2(server, scene_jpeg):
    reply = server.invoke(data=scene_jpeg, content_type="image/jpeg", headers={
        "X-Amzn-SageMaker-Custom-Attributes": "action=sam2;x=80;y=85.5;multimask=false;return_images=[\"overlay\"]"})
    body = ok_json(reply)
    (mask,) = check_segmentation(body, "sam2")
    assert png_size(body["overlay"]) == SCENE_SIZE
    assert "original" not in body and "mask_only" not in body


# --- JSON Lines batches (batch transform, SplitType=Line) ----------------------------------------------------


def test_a_json_lines_batch_answers_one_line_per_line_in_order(server, scene_jpeg):
    image = b64(scene_jpeg)
    lines = [
        json.dumps({"action": "ping"}),
        json.dumps({"action": "sam2", "image": image, "box": [40, 40, 120, 130], "multimask": False}),
        '{"action": "sam2", "image": ',  # not JSON
        json.dumps({"action": "langsam", "image": image, "text_prompt": "blue disc", **LANGSAM, "max_detections": 1}),
        json.dumps({"action": "segment", "image": image}),  # unknown action: refused by the router
        json.dumps({"action": "sam2", "image_id": "0" * 32, "x": 1, "y": 1}),  # refused by the model: 404
        json.dumps({"action": "sam2", "image": image, "x": 1, "y": 1, "colour": "red"}),  # unknown field: 400
    ]
    reply = server.invoke(data=("\n".join(lines) + "\n").encode(), content_type="application/jsonlines")
    assert reply.status_code == 200, reply.text[:2000]
    assert reply.headers["Content-Type"].startswith("application/jsonlines")
    out = reply.content.decode().splitlines()
    assert len(out) == len(lines), out
    answers = [json.loads(line) for line in out]

    assert answers[0]["action"] == "ping" and answers[0]["status"] == "ready"
    check_segmentation(answers[1], "sam2")
    check_error_object(answers[2], "invalid_request")
    assert "line 3" in answers[2]["error"]["message"]
    check_segmentation(answers[3], "langsam")
    assert answers[3]["text_prompt"] == "blue disc"
    check_error_object(answers[4], "invalid_request", field="action")
    check_error_object(answers[5], "not_found", field="image_id")
    check_error_object(answers[6], "invalid_request", field="colour")
    assert [a["error"]["status"] for a in answers if "error" in a] == [400, 400, 404, 400]

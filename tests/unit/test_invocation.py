"""The request workflow end to end without TorchServe: content types, every action's response, every error status."""

from __future__ import annotations

import base64
import io
import json

import numpy as np
import pytest
import torch
from PIL import Image

from segserve.media.image_loading import ImageLoader
from segserve.inference.invocation import Invoker
from segserve.contract.wire import parse_custom_attributes
from segserve.media.masks import decode_rle, encode_rle
from segserve.inference.sam2_client import Sam2Client
from segserve.inference.services import LangSamService, Sam2Service
from segserve.contract.wire import Reply


def png_bytes(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def sam2_model(service: Sam2Service):
    """langsam's post to the sam2 model, answered in-process by that model's own Invoker (no HTTP)."""
    invoker = Invoker([service], service.pipeline.runtime, model={"name": "sam2", "version": "1.0"})

    def post(model, body, headers):
        return invoker(body, headers["Content-Type"], headers)

    return post


@pytest.fixture(scope="module")
def invoke(sam2_pipeline, detector):
    """Both actions without an embedding cache (the default): every request encodes its image."""
    loader = ImageLoader()
    sam2 = Sam2Service(sam2_pipeline, loader)
    langsam = LangSamService(detector, Sam2Client(sam2_model(sam2), lambda image_id: "sam2"), loader)
    invoker = Invoker([sam2, langsam], sam2_pipeline.runtime)

    def call(payload=None, body=None, content_type="application/json", headers=None):
        reply = invoker(json.dumps(payload).encode() if body is None else body, content_type, headers or {}, "req-1")
        return reply.status, json.loads(reply.body)

    return call


@pytest.fixture(scope="module")
def image_b64(scene):
    return base64.b64encode(png_bytes(scene)).decode()


def test_sam2_with_the_seed_point_form(invoke, image_b64):
    status, body = invoke({"action": "sam2", "image": image_b64, "x": 200, "y": 150})
    assert status == 200, body
    assert body["image"]["width"] == 640 and body["image"]["height"] == 480 and len(body["image"]["id"]) == 32
    assert len(body["masks"]) == 3
    scores = [m["score"] for m in body["masks"]]
    assert scores == sorted(scores, reverse=True)
    first = body["masks"][0]
    mask = decode_rle(first["mask"])
    assert mask.shape == (480, 640) and first["area"] == int(mask.sum())
    assert set(body["timings_ms"]) >= {"load_image", "sam2_image_encoder", "sam2_mask_decoder", "total"}


def test_sam2_points_box_single_mask_png(invoke, image_b64):
    status, body = invoke({
        "action": "sam2", "image": image_b64, "points": [[200, 150], [450, 310]], "labels": [1, 0],
        "box": [100, 90, 300, 250], "multimask": False, "mask_format": "png",
    })
    assert status == 200, body
    (entry,) = body["masks"]
    png = Image.open(io.BytesIO(base64.b64decode(entry["mask"]["data"])))
    assert png.size == (640, 480) and entry["area"] == int((np.array(png) > 0).sum())


def test_sam2_polygons_and_the_seed_images(invoke, image_b64):
    status, body = invoke({
        "action": "sam2", "image": image_b64, "box": [100, 90, 300, 250], "multimask": False,
        "mask_format": "polygons", "return_images": True,
    })
    assert status == 200, body
    assert body["masks"][0]["mask"]["format"] == "polygons"
    for name in ("original", "overlay", "mask_only"):
        picture = Image.open(io.BytesIO(base64.b64decode(body[name])))
        assert picture.size == (640, 480)


def test_refining_a_previous_mask(invoke, image_b64):
    _, first = invoke({"action": "sam2", "image": image_b64, "x": 200, "y": 150, "multimask": False})
    status, body = invoke({
        "action": "sam2", "image": image_b64, "points": [[200, 150]], "labels": [1],
        "mask_input": first["masks"][0]["mask"], "multimask": False,
    })
    assert status == 200, body


def test_a_previous_mask_alone_is_a_prompt(invoke, image_b64):
    _, first = invoke({"action": "sam2", "image": image_b64, "box": [100, 90, 300, 250], "multimask": False})
    status, body = invoke({"action": "sam2", "image": image_b64, "mask_input": first["masks"][0]["mask"],
                           "multimask": False})
    assert status == 200 and len(body["masks"]) == 1


def test_langsam_entries_carry_label_and_detector_score(invoke, image_b64):
    status, body = invoke({"action": "langsam", "image": image_b64, "text_prompt": "black jeans", "max_detections": 3})
    assert status == 200, body
    assert len(body["masks"]) == 3 and body["text_prompt"] == "black jeans"
    for entry in body["masks"]:
        assert {"label", "detector_score", "detector_box", "score", "box", "mask"} <= set(entry)
        assert 0.3 < entry["detector_score"] <= 1.0
    assert "grounding_dino" in body["timings_ms"]


def test_langsam_with_nothing_detected_is_an_empty_success(invoke, image_b64):
    status, body = invoke({"action": "langsam", "image": image_b64, "text_prompt": "dog", "box_threshold": 1.0})
    assert status == 200 and body["masks"] == []


def test_raw_image_body_with_custom_attributes(invoke, scene):
    status, body = invoke(
        body=png_bytes(scene), content_type="image/png",
        headers={"X-Amzn-SageMaker-Custom-Attributes": "action=langsam;text_prompt=black%20jeans;max_detections=2"},
    )
    assert status == 200, body
    assert len(body["masks"]) == 2


def test_ping_needs_no_image(invoke):
    status, body = invoke({"action": "ping"})
    assert status == 200 and body["status"] == "ready"


def test_custom_attributes_parsing():
    assert parse_custom_attributes("action=sam2; box=[1,2,3,4] ;multimask=false") == {
        "action": "sam2", "box": [1, 2, 3, 4], "multimask": "false",
    }


@pytest.mark.parametrize(
    "payload, status, code, field",
    [
        ({"action": "segment"}, 400, "invalid_request", "action"),
        ({"image": "x"}, 400, "invalid_request", "action"),
        ({"action": "sam2", "image": "aGVsbG8=", "x": 1}, 400, "invalid_request", None),
        ({"action": "sam2", "image": "%%%", "x": 1, "y": 1}, 400, "invalid_image", "image"),
        ({"action": "sam2", "image": "aGVsbG8gd29ybGQ=", "x": 1, "y": 1}, 415, "unsupported_media_type", "image"),
        ({"action": "langsam", "image": "x", "text_prompt": "a", "box_threshold": 1.5}, 400, "invalid_request",
         "box_threshold"),
        ({"action": "langsam", "image_id": "abc", "text_prompt": "a"}, 404, "not_found", "image_id"),
        ({"action": "langsam", "image_url": "http://169.254.169.254/latest/meta-data/", "text_prompt": "a"}, 400,
         "invalid_request", "image_url"),
        ({"action": "sam2", "image": "x", "x": 1, "y": 1, "colour": "red"}, 400, "invalid_request", "colour"),
    ],
)
def test_client_errors(invoke, payload, status, code, field):
    got_status, body = invoke(payload)
    assert got_status == status, body
    assert body["error"]["code"] == code and body["error"].get("field") == field
    assert body["error"]["request_id"] == "req-1" and "Traceback" not in body["error"]["message"]


def test_a_point_outside_the_image(invoke, image_b64):
    status, body = invoke({"action": "sam2", "image": image_b64, "x": 641, "y": 10})
    assert status == 400 and "outside the 640x480 image" in body["error"]["message"]
    assert body["error"]["field"] == "x"


def test_a_mask_input_of_the_wrong_size(invoke, image_b64):
    rle = encode_rle(np.zeros((10, 10), bool))
    status, body = invoke({"action": "sam2", "image": image_b64, "x": 1, "y": 1, "mask_input": rle})
    assert status == 400 and body["error"]["field"] == "mask_input"


@pytest.mark.parametrize(
    "body, content_type, status",
    [
        (b"{not json", "application/json", 400),
        (b"[1, 2]", "application/json; charset=utf-8", 400),
        (b"a,b", "text/csv", 415),
        (b'{"action": "ping"}\n', "application/jsonlines", 415),
        (b"", "image/jpeg", 400),
    ],
)
def test_bodies_that_cannot_be_read(invoke, body, content_type, status):
    got, reply = invoke(body=body, content_type=content_type)
    assert got == status and "error" in reply


def test_an_oversized_image_is_413(sam2_pipeline, scene):
    invoker = Invoker([Sam2Service(sam2_pipeline, ImageLoader(max_pixels=1000))], sam2_pipeline.runtime)
    payload = {"action": "sam2", "image": base64.b64encode(png_bytes(scene)).decode(), "x": 1, "y": 1}
    reply = invoker(json.dumps(payload).encode(), "application/json", {})
    assert reply.status == 413


def test_an_oversized_response_is_413_not_a_crash(sam2_pipeline, scene):
    invoker = Invoker([Sam2Service(sam2_pipeline, ImageLoader())], sam2_pipeline.runtime, max_response_bytes=500)
    payload = {"action": "sam2", "image": base64.b64encode(png_bytes(scene)).decode(), "x": 1, "y": 1}
    reply = invoker(json.dumps(payload).encode(), "application/json", {})
    assert reply.status == 413 and b"max_detections" in reply.body


class _Broken:
    action = "sam2"

    def __init__(self, error):
        self.error = error

    def run(self, request, raw_image, timer):
        raise self.error


@pytest.mark.parametrize("error, status", [(RuntimeError("secret detail"), 500), (torch.OutOfMemoryError(), 507)])
def test_bugs_never_leak_details(sam2_pipeline, error, status):
    invoker = Invoker([_Broken(error)], sam2_pipeline.runtime)
    reply = invoker(json.dumps({"action": "sam2", "image": "x", "x": 1, "y": 1}).encode(), "application/json", {}, "r9")
    assert reply.status == status
    assert b"secret" not in reply.body and b"Traceback" not in reply.body and b"r9" in reply.body


def test_a_model_refuses_the_other_action(sam2_pipeline):
    invoker = Invoker([Sam2Service(sam2_pipeline, ImageLoader())], sam2_pipeline.runtime)
    reply = invoker(json.dumps({"action": "langsam", "image": "x", "text_prompt": "a"}).encode(), "application/json", {})
    assert reply.status == 400 and b"routes by action" in reply.body

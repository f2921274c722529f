"""langsam's client of the sam2 model, against a scripted sam2: what it sends, and how sam2's answers come back."""

from __future__ import annotations

import json

import numpy as np
import pytest

from segserve.contract.wire import header
from segserve.inference.sam2_client import Sam2Client
from segserve.contract.requests import parse_request
from segserve.contract.errors import ImageNotCached, NotReady, PayloadTooLarge, ServiceError
from segserve.media.image_loading import LoadedImage
from segserve.models.runtime import Runtime, StageTimer
from segserve.contract.wire import Reply

REQUEST = parse_request({"action": "langsam", "image_id": "abc", "text_prompt": "cat", "mask_format": "png"})
IMAGE = LoadedImage(np.zeros((4, 6, 3), np.uint8), "abc", b"\x89PNG-bytes-as-received")
NOT_FOUND = Reply(404, b'{"error": {"code": "not_found", "message": "m", "field": "image_id"}}')
ANSWER = {"action": "sam2", "image": {"id": "abc", "width": 6, "height": 4}, "cache": "miss", "masks": [],
          "timings_ms": {"load_image": 1.5, "sam2_image_encoder": 900.0, "total": 902.0},
          "model": {"name": "sam2", "version": "1.0"}}


class ScriptedSam2:
    def __init__(self, *replies):
        self.replies = list(replies)
        self.calls = []

    def __call__(self, model, body, headers):
        self.calls.append((model, body, headers))
        reply = self.replies.pop(0)
        if isinstance(reply, Exception):
            raise reply
        return reply


def ok(body: dict) -> Reply:
    return Reply(200, json.dumps(body).encode())


def test_a_hit_by_id_is_one_small_request_to_the_images_home():
    sam2 = ScriptedSam2(ok({**ANSWER, "cache": "hit", "timings_ms": {"sam2_mask_decoder": 40.0, "total": 41.0}}))
    timer = StageTimer(Runtime.select("cpu"))
    answer = Sam2Client(sam2, lambda image_id: f"home-of-{image_id}").segment(IMAGE, [[0, 0, 2, 2]], REQUEST, timer)
    ((model, body, headers),) = sam2.calls
    assert model == "home-of-abc" and headers == {"Content-Type": "application/json"}
    assert json.loads(body) == {"action": "sam2", "image_id": "abc", "boxes": [[0, 0, 2, 2]], "mask_format": "png",
                                "return_images": []}
    assert answer.cache == "hit" and not {"model", "timings_ms"} & answer.model_fields_set
    assert timer.stages == {"sam2_mask_decoder": 40.0}


def test_a_miss_sends_the_image_as_received_with_the_boxes_in_its_attributes():
    sam2 = ScriptedSam2(NOT_FOUND, ok(ANSWER))
    timer = StageTimer(Runtime.select("cpu"))
    answer = Sam2Client(sam2, lambda image_id: "sam2").segment(IMAGE, [[0.5, 0, 2, 2.5]], REQUEST, timer)
    _, body, headers = sam2.calls[1]
    assert body == IMAGE.source and headers["Content-Type"] == "application/x-image"
    assert header(headers, "X-Amzn-SageMaker-Custom-Attributes") == (
        "action=sam2;boxes=[[0.5,0,2,2.5]];mask_format=png;return_images=[]")
    assert answer.cache == "miss"
    # sam2's stages become langsam's, its image decode named apart from langsam's own
    assert timer.stages == {"sam2_load_image": 1.5, "sam2_image_encoder": 900.0}


def test_an_image_by_id_that_sam2_does_not_hold_is_not_cached():
    with pytest.raises(ImageNotCached, match="send the image again"):
        Sam2Client(ScriptedSam2(NOT_FOUND), lambda image_id: "sam2").image("abc", StageTimer(Runtime.select("cpu")))


def test_sam2_unreachable_or_not_ready_is_503_with_a_retry_after():
    for failure in (ConnectionRefusedError(), Reply(503, b'{"code": 503, "type": "x"}')):
        client = Sam2Client(ScriptedSam2(failure), lambda image_id: "sam2")
        with pytest.raises(NotReady) as raised:
            client.segment(IMAGE, [], REQUEST, StageTimer(Runtime.select("cpu")))
        assert raised.value.status == 503 and raised.value.headers["Retry-After"] == "5"


def test_sam2s_own_errors_keep_their_status_code_and_message():
    error = Reply(413, b'{"error": {"code": "payload_too_large", "message": "too big"}}')
    with pytest.raises(ServiceError) as raised:
        Sam2Client(ScriptedSam2(error), lambda image_id: "sam2").segment(IMAGE, [], REQUEST,
                                                                         StageTimer(Runtime.select("cpu")))
    assert (raised.value.status, raised.value.code, raised.value.message) == (413, "payload_too_large", "too big")


def test_an_image_too_large_to_fetch_by_id_asks_for_the_image_itself():
    too_big = Reply(413, b'{"error": {"code": "payload_too_large", "message": "6.5 MB"}}')
    with pytest.raises(PayloadTooLarge, match="send the image itself") as raised:
        Sam2Client(ScriptedSam2(too_big), lambda image_id: "sam2").image("abc", StageTimer(Runtime.select("cpu")))
    assert raised.value.field == "image_id"

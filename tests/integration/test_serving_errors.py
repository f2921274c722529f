"""Every error status a client can meet on a live endpoint, each with the documented body and no traceback.

The body is `{"error": {"code", "message", "field"?, "request_id"?}}` whether the router or a model refused
the request. The one exception is TorchServe's own 413 for a body over max_request_size, which never
reaches Python. A refused request must never cost a worker: the worker pids are the same afterwards.
"""

from __future__ import annotations

import pytest
import requests

from tests.conftest import make_scene
from tests.integration.serving import assert_error, b64, check_segmentation, encode, ok_json

pytestmark = pytest.mark.integration

MODELS = ("router", "langsam", "sam2")


@pytest.fixture(scope="module", autouse=True)
def pids_before(server) -> dict[str, list[int]]:
    """Worker pids before the first error test of this module (autouse: taken before any of them runs)."""
    return {model: server.worker_pids(model) for model in MODELS}


@pytest.mark.parametrize(
    ("payload", "field", "words"),
    [
        pytest.param({"action": "segment_everything", "image_url": "https://example.com/a.png"}, "action",
                     "valid actions", id="unknown-action"),
        pytest.param({"image_url": "https://example.com/a.png"}, "action", "missing", id="no-action"),
        pytest.param({"action": "sam2", "image_url": "https://example.com/a.png", "x": 1, "y": 1, "threshold": 0.5},
                     "threshold", "unknown field", id="unknown-field"),
        pytest.param({"action": "langsam", "image_url": "https://example.com/a.png", "text_prompt": "cat",
                      "box_threshold": 1.5}, "box_threshold", "", id="threshold-out-of-range"),
        pytest.param({"action": "sam2", "image_url": "https://example.com/a.png", "image": "AAAA", "x": 1, "y": 1},
                     None, "exactly one of", id="two-image-sources"),
    ],
)
def test_400_for_an_invalid_request(server, payload, field, words):
    error = assert_error(server.invoke(payload), 400, "invalid_request", field)
    assert words in error["message"]


def test_400_for_a_point_outside_the_image(server, scene_png):
    error = assert_error(server.invoke({"action": "sam2", "image": b64(scene_png), "x": 321, "y": 10}),
                         400, "invalid_request", "x")
    assert "outside the 320x240 image" in error["message"]


def test_400_for_the_instance_metadata_address_even_with_private_urls_allowed(server):
    # allow_private_image_urls lets loopback through in this deployment; link-local (IMDS) stays refused.
    error = assert_error(server.invoke({"action": "sam2", "image_url": "http://169.254.169.254/latest/meta-data",
                                        "x": 1, "y": 1}), 400, "invalid_request", "image_url")
    assert "is not a public address" in error["message"]


def test_400_for_a_json_body_that_is_not_json(server):
    assert_error(server.invoke(data=b'{"action": "sam2",', content_type="application/json"), 400, "invalid_request")


def test_404_for_an_unknown_image_id(server):
    error = assert_error(server.invoke({"action": "sam2", "image_id": "f" * 32, "x": 1, "y": 1}),
                         404, "not_found", "image_id")
    assert error["request_id"]


def test_413_for_an_image_over_max_pixels(server):
    big = encode(make_scene(300, 400), "PNG")  # 120,000 pixels; the test config allows 100,000
    error = assert_error(server.invoke({"action": "sam2", "image": b64(big), "x": 1, "y": 1}),
                         413, "payload_too_large", "image")
    assert "100,000" in error["message"]


def test_413_from_torchserve_itself_for_a_body_over_max_request_size(server):
    """7 MB > max_request_size (6,553,600): Netty refuses it before any handler runs, with an EMPTY body."""
    body = b'{"action": "sam2", "image": "' + b"A" * 7_000_000 + b'"}'
    reply = requests.post(server.inference + "/invocations", data=body, timeout=60,
                          headers={"Content-Type": "application/json"})
    assert reply.status_code == 413
    assert reply.content == b""  # not our error shape: this limit is TorchServe's (SageMaker's is 6 MB anyway)
    assert ok_json(server.invoke({"action": "ping"}))["status"] == "ready"


@pytest.mark.parametrize("content_type", ["text/csv", "application/x-www-form-urlencoded"])
def test_415_for_an_unsupported_content_type(server, content_type):
    error = assert_error(server.invoke(data=b"a,b\n1,2\n", content_type=content_type), 415, "unsupported_media_type")
    assert content_type in error["message"]


def test_415_for_a_raw_body_that_is_not_an_image(server):
    assert_error(server.invoke(data=b"GIF89a but not really", content_type="image/png",
                               headers={"X-Amzn-SageMaker-Custom-Attributes": "action=sam2;x=1;y=1"}),
                 415, "unsupported_media_type", "body")


def test_the_workers_survived_every_error(server, pids_before):
    assert {model: server.worker_pids(model) for model in MODELS} == pids_before
    assert server.ping().status == 200


def test_503_while_sam2_has_no_worker_then_it_works_again(server, scene_png):
    scaled = server.manage("PUT", "/models/sam2?min_worker=0&max_worker=0&synchronous=true")
    try:
        assert scaled.status_code == 200, scaled.text
        assert server.describe("sam2")["workers"] == []
        error = assert_error(server.invoke({"action": "sam2", "image": b64(scene_png), "x": 1, "y": 1}),
                             503, "not_ready")
        assert "sam2" in error["message"]
        assert server.ping().status == 503  # and /ping tells the load balancer
        readiness = server.invoke({"action": "ping"})
        assert readiness.status_code == 503
        assert readiness.json()["status"] == "not_ready"
        assert readiness.json()["models"]["sam2"] == {"registered": True, "workers": 0, "ready_workers": 0}
        assert readiness.json()["models"]["langsam"]["ready_workers"] == 1  # the other model is not affected
    finally:
        restored = server.manage("PUT", "/models/sam2?min_worker=1&max_worker=1&synchronous=true")
    assert restored.status_code == 200, restored.text
    assert server.describe("sam2")["minWorkers"] == 1
    server.wait_healthy(120)
    body = ok_json(server.invoke({"action": "sam2", "image": b64(scene_png), "x": 80, "y": 85, "multimask": False}))
    check_segmentation(body, "sam2")

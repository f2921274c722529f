"""Every error status a client can meet on a live endpoint, each with the documented body and no traceback.

The body is `{"error": {"code", "message", "field"?, "request_id"?}}` whether the router or a model refused
the request. The one exception is TorchServe's own 413 for a body over twice the limit (its max_request_size),
which never reaches Python. A refused request must never cost a worker: the worker pids are the same afterwards.
"""

from __future__ import annotations

import json
import subprocess
import urllib.error
import urllib.request

import pytest
import requests

from tests.conftest import make_scene
from tests.integration.serving import (
    assert_error, b64, check_error_object, check_segmentation, encode, ok_json,
)

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


def _oversized(size: int) -> bytes:
    return b'{"action": "sam2", "image": "' + b"A" * size + b'"}'


def _curl(server, body: bytes, tmp_path) -> tuple[int, bytes]:
    """curl --data-binary, as docs/API.md shows it (curl sends `Expect: 100-continue` for a body this big)."""
    (tmp_path / "body.json").write_bytes(body)
    result = subprocess.run(
        ["curl", "-s", "-o", str(tmp_path / "answer"), "-w", "%{http_code}", "-X", "POST",
         "-H", "Content-Type: application/json", "--data-binary", f"@{tmp_path / 'body.json'}",
         server.inference + "/invocations"],
        capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return int(result.stdout), (tmp_path / "answer").read_bytes()


def _urllib(server, body: bytes):
    """Python's standard client: it sends `Connection: close`."""
    request = urllib.request.Request(server.inference + "/invocations", data=body,
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as reply:
            return reply.status, reply.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def test_413_that_says_why_for_a_body_a_little_over_the_limit_whatever_the_client(server, tmp_path):
    """7 MB > the 6,553,600 byte limit: TorchServe takes it (its own limit is twice that) and the router refuses it."""
    body = _oversized(7_000_000)
    answers = {"requests": requests.post(server.inference + "/invocations", data=body, timeout=60,
                                         headers={"Content-Type": "application/json"}),
               "curl": _curl(server, body, tmp_path), "urllib": _urllib(server, body)}
    error = assert_error(answers.pop("requests"), 413, "payload_too_large", "body")
    assert "7,000,031 bytes, over this endpoint's 6,553,600 byte limit" in error["message"]
    for client, (status, answer) in answers.items():
        assert status == 413, client
        check_error_object(json.loads(answer), "payload_too_large", "body")


def test_a_body_over_twice_the_limit_gets_torchserves_empty_413_or_a_reset_upload(server, tmp_path):
    """Over TorchServe's own max_request_size, Netty answers before reading the body: an EMPTY 413 to a client
    that keeps the connection (requests, curl), a reset upload to one that sent `Connection: close` (urllib)."""
    body = _oversized(14_000_000)
    reply = requests.post(server.inference + "/invocations", data=body, timeout=60,
                          headers={"Content-Type": "application/json"})
    assert (reply.status_code, reply.content) == (413, b"")
    assert _curl(server, body, tmp_path) == (413, b"")
    with pytest.raises(urllib.error.URLError) as reset:
        _urllib(server, body)
    assert isinstance(reset.value.reason, (ConnectionResetError, BrokenPipeError)), reset.value
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

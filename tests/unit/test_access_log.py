"""The router's one line per request: what it names, and its shape."""

from __future__ import annotations

import logging
import time

import pytest

from segserve.contract.wire import Reply, decode_body
from segserve.routing.access_log import log_request, request_label


@pytest.mark.parametrize("body, content_type, headers, label", [
    (b'{"action": "sam2", "image_id": "x"}', "application/json", {}, "sam2"),
    (b'{"image_id": "x", "action":"langsam"}', "application/json", {}, "langsam"),
    (b'{"image": "' + b"A" * 10_000 + b'", "action": "sam2"}', "application/json", {}, "sam2"),  # decoded: anywhere
    (b'{"text_prompt": "\\"action\\": \\"sam3\\""}', "application/json", {}, "?"),  # quoted inside a string
    (b'{"action": "sam2\\nINFO forged line"}', "application/json", {}, "?"),  # a client's text never reaches the log
    (b"\x89PNG...", "image/png", {"X-Amzn-SageMaker-Custom-Attributes": "x=1;action=sam3"}, "sam3"),
    (b"\x89PNG...", "image/png", {}, "?"),
    (b'{"action": "sam2"}\n{"action": "langsam"}\n', "application/jsonlines", {}, "batch"),
])
def test_the_label_is_the_action_of_the_decoded_request(body, content_type, headers, label):
    assert request_label(decode_body(body, content_type, headers), body) == label


@pytest.mark.parametrize("body, label", [
    (b'{"action": "sam2", "image": "' + b"A" * 10_000 + b'"}', "sam2"),  # e.g. over the size limit
    (b'{"image": "' + b"A" * 10_000 + b'", "action": "sam2"}', "?"),  # past the peek
    (b"not json", "?"),
])
def test_a_body_refused_before_decoding_is_named_from_its_first_bytes(body, label):
    assert request_label(None, body) == label


def test_one_line_names_action_status_time_cache_and_request_id(caplog):
    with caplog.at_level(logging.INFO, logger="segserve.requests"):
        log_request("sam2", Reply(200, b"{}", headers={"x-segserve-cache": "hit"}), time.perf_counter(), "rid-1")
        log_request("batch", Reply(503, b"{}"), time.perf_counter() - 0.25, None)
    first, second = (record.getMessage() for record in caplog.records)
    assert first.startswith("sam2 200 ") and first.endswith(" ms cache=hit id=rid-1")
    assert second.startswith("batch 503 25") and second.endswith(" ms cache=- id=-")

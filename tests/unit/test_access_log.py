"""The router's one line per request: what it names, and its shape."""

from __future__ import annotations

import logging
import time

import pytest

from segserve.contract.wire import Reply
from segserve.routing.access_log import log_request, request_label


@pytest.mark.parametrize("body, content_type, headers, label", [
    (b'{"action": "sam2", "image_id": "x"}', "application/json", {}, "sam2"),
    (b'{"image_id": "x", "action":"langsam"}', "application/json", {}, "langsam"),
    (b'{"image": "' + b"A" * 10_000 + b'", "action": "sam2"}', "application/json", {}, "?"),  # past the peek
    (b'{"text_prompt": "\\"action\\": \\"sam3\\""}', "application/json", {}, "?"),  # quoted inside a string
    (b"\x89PNG...", "image/png", {"X-Amzn-SageMaker-Custom-Attributes": "x=1;action=sam3"}, "sam3"),
    (b"\x89PNG...", "image/png", {}, "?"),
    (b'{"action": "sam2"}\n{"action": "langsam"}\n', "application/jsonlines", {}, "batch"),
    (b"not json", "application/json", {}, "?"),
])
def test_the_label_is_the_action_read_from_the_first_bytes(body, content_type, headers, label):
    assert request_label(body, content_type, headers) == label


def test_one_line_names_action_status_time_cache_and_request_id(caplog):
    with caplog.at_level(logging.INFO, logger="segserve.requests"):
        log_request("sam2", Reply(200, b"{}", headers={"x-segserve-cache": "hit"}), time.perf_counter(), "rid-1")
        log_request("batch", Reply(503, b"{}"), time.perf_counter() - 0.25, None)
    first, second = (record.getMessage() for record in caplog.records)
    assert first.startswith("sam2 200 ") and first.endswith(" ms cache=hit id=rid-1")
    assert second.startswith("batch 503 25") and second.endswith(" ms cache=- id=-")

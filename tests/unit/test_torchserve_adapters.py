"""The TorchServe adapters (handlers/torchserve_io.py and the handlers) with TorchServe's own Context and
RequestProcessor, as pytorch/serve's handler tests build them: no live server, real segserve behind them.

What is checked is the mapping, per index of a batch: the body found under "body" or "data" (bytes, str or an
already-decoded object), its content type from the parameter's properties or the headers, the request id, and
the reply's status, content type, headers and stage metrics set on that index only.
"""

from __future__ import annotations

import base64
import json
import os
import sys
from pathlib import Path

import pytest
import ts
from ts.context import Context, RequestProcessor
from ts.metrics.metric_cache_yaml_impl import MetricsCacheYamlImpl

from segserve.contract.errors import Overloaded
from segserve.contract.wire import Reply, error_body

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "handlers"))  # TorchServe ships these as top-level modules of the archive

import torchserve_io  # noqa: E402
from tests.conftest import make_scene  # noqa: E402
from tests.unit.test_invocation import png_bytes  # noqa: E402


class RecordingMetrics:
    """TorchServe's metrics cache, with every call it gets recorded."""

    def __init__(self):
        self.inner = MetricsCacheYamlImpl(os.path.join(os.path.dirname(ts.__file__), "configs", "metrics.yaml"))
        self.inner.initialize_cache()
        self.calls = []

    def __getattr__(self, name):
        method = getattr(self.inner, name)

        def record(*args, **kwargs):
            self.calls.append((name, args, kwargs))
            return method(*args, **kwargs)

        return record


def make_context(model_dir: Path, name: str, headers: list[dict], yaml_config: dict | None = None) -> Context:
    context = Context(name, str(model_dir), {"model": {"modelVersion": "1.0"}}, len(headers), None, "0.12.0",
                      metrics=RecordingMetrics(), model_yaml_config=yaml_config or {})
    context.request_processor = [RequestProcessor(h) for h in headers]
    context.request_ids = {i: f"req-{i}" for i in range(len(headers))}
    return context


def test_each_request_of_a_batch_is_answered_on_its_own_index(tmp_path):
    seen = []

    def invoke(body, content_type, headers, request_id):
        seen.append((body, content_type, request_id, headers.get("x-custom")))
        if b"busy" in body:
            error = Overloaded("the queue is full", retry_after_s=2)
            return Reply(503, error_body(error, request_id), headers=error.headers)
        return Reply(200, b'{"ok": true}', timings={"stage_a": 1.5, "total": 2.0})

    context = make_context(tmp_path, "sam2", [
        {"body": {"content-type": "application/json"}, "x-custom": "one"},
        {"x-custom": "two", "Content-Type": "image/png"},
        {},
    ])
    data = [{"body": b'{"action": "ping"}'}, {"data": "busy"}, {"body": {"action": "ping"}}]
    replies = torchserve_io.serve_batch(data, context, invoke)

    assert replies[0] == b'{"ok": true}' and json.loads(replies[1])["error"]["code"] == "overloaded"
    assert seen == [(b'{"action": "ping"}', "application/json", "req-0", "one"),
                    (b"busy", "image/png", "req-1", "two"),  # no parameter property: the header's type
                    (b'{"action": "ping"}', None, "req-2", None)]  # a decoded body goes back to JSON bytes
    assert [context.get_response_status(i)[0] for i in range(3)] == [200, 503, 200]
    assert context.get_response_status(1) == (503, "Service Unavailable")
    # TorchServe keeps the content type among the response headers; ours go beside it, on their index only.
    assert context.get_response_headers(1) == {"content-type": "application/json", "Retry-After": "2"}
    assert context.get_response_headers(0) == {"content-type": "application/json"}
    stages = [call for call in context.metrics.calls if call[0] == "add_time"]
    assert len(stages) == 4  # two stages for each of the two answers that had timings
    assert stages[0][1][:2] == ("SegmentationStageTime", 1.5)


def test_a_model_folder_of_another_version_refuses_to_start(tmp_path):
    from segserve.build_info import BUILD_INFO_FILE, ModelStoreMismatch

    (tmp_path / BUILD_INFO_FILE).write_text(json.dumps({"package": "segserve", "version": "0.0.1-other"}))
    with pytest.raises(ModelStoreMismatch, match="0.0.1-other"):
        torchserve_io.start_worker(make_context(tmp_path, "sam2", [{}]))


def test_the_sam3_handler_serves_a_batch_with_a_bad_request_in_it(tiny_bundle, tmp_path):
    """The real handler on the tiny SAM 3: start, one good and one bad request in a batch, cache metrics."""
    from segserve.build_info import write_build_info
    from segserve.weights.bundle import WeightsBundle

    model_dir = tmp_path / "sam3"
    model_dir.mkdir()
    write_build_info(model_dir)
    WeightsBundle("tiny", None, None, None, tiny_bundle.sam3_dir).write(model_dir / "weights")
    import sam3_handler  # a handlers/ module, found through the sys.path entry above

    handler = sam3_handler.Sam3Handler()
    yaml_config = {"handler": {"weights": "weights", "embedding_cache_bytes": 1 << 28}}
    handler.initialize(make_context(model_dir, "sam3", [{}], yaml_config))
    image = base64.b64encode(png_bytes(make_scene(60, 80))).decode()
    context = make_context(model_dir, "sam3", [{"Content-Type": "application/json"}] * 2, yaml_config)
    good = json.dumps({"action": "sam3", "image": image, "text_prompt": "dog", "score_threshold": 0.0,
                       "max_detections": 2}).encode()
    bad = json.dumps({"action": "sam3", "image": image}).encode()
    replies = handler.handle([{"body": good}, {"body": bad}], context)
    answer, error = json.loads(replies[0]), json.loads(replies[1])
    assert answer["action"] == "sam3" and len(answer["masks"]) == 2 and answer["model"]["name"] == "sam3"
    assert error["error"]["code"] == "invalid_request" and error["error"]["request_id"] == "req-1"
    assert [context.get_response_status(i)[0] for i in range(2)] == [200, 400]
    counters = {call[1][0] for call in context.metrics.calls if call[0] == "add_counter"}
    assert counters == {"SegmentationCacheMisses"}  # the one image, encoded once

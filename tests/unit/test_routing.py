"""The router without TorchServe: what it forwards where, batches, readiness, and TorchServe's errors."""

from __future__ import annotations

import json

import pytest

from segserve.contract.wire import Reply
from segserve.routing.router import Router

READY = [{"workers": [{"status": "READY"}]}]


class FakeModels:
    def __init__(self, replies=None, descriptions=None):
        self.calls = []
        self.replies = replies or {}
        self.descriptions = descriptions if descriptions is not None else {"router": READY, "langsam": READY,
                                                                            "sam2": READY}

    def forward(self, model, body, headers, on_slow=None):
        self.calls.append((model, body, headers))
        reply = self.replies.get(model, Reply(200, b'{"action": "%s"}' % model.encode()))
        if isinstance(reply, Exception):
            raise reply
        return reply

    def router(self):
        return Router(self.forward, self.descriptions.get, {"langsam": "langsam", "sam2": "sam2"})


def call(router, body, content_type="application/json", headers=None):
    reply = router(body, content_type, headers or {}, "rid")
    return reply.status, reply.body, reply.content_type


def test_json_goes_to_the_action_model_unchanged():
    models = FakeModels()
    body = b'{"action": "sam2", "image": "abc", "x": 1,  "y": 2}'
    status, reply, _ = call(models.router(), body, "application/json; charset=utf-8")
    assert status == 200 and reply == b'{"action": "sam2"}'
    assert models.calls == [("sam2", body, {"Content-Type": "application/json"})]


def test_raw_images_go_by_the_custom_attributes_action():
    models = FakeModels()
    attributes = "action=langsam;text_prompt=black jeans"
    status, _, _ = call(models.router(), b"\xff\xd8jpeg", "image/jpeg",
                        {"x-amzn-sagemaker-custom-attributes": attributes})
    assert status == 200
    model, body, headers = models.calls[0]
    assert model == "langsam" and body == b"\xff\xd8jpeg"
    assert headers == {"Content-Type": "image/jpeg", "X-Amzn-SageMaker-Custom-Attributes": attributes}


@pytest.mark.parametrize(
    "body, content_type, status",
    [(b'{"action": "segment"}', "application/json", 400), (b'{"image": "x"}', "application/json", 400),
     (b"{oops", "application/json", 400), (b"a,b", "text/csv", 415), (b"\xff\xd8", "image/jpeg", 400)],
)
def test_requests_that_cannot_be_routed(body, content_type, status):
    models = FakeModels()
    got, reply, _ = call(models.router(), body, content_type)
    assert got == status and "error" in json.loads(reply) and models.calls == []


def test_ping_reports_each_model():
    status, body, _ = call(FakeModels().router(), b'{"action": "ping"}')
    assert status == 200
    assert json.loads(body)["models"]["sam2"] == {"registered": True, "workers": 1, "ready_workers": 1}


def test_ping_is_503_while_a_model_has_no_ready_worker():
    models = FakeModels(descriptions={"router": READY, "langsam": [{"workers": [{"status": "UNLOADING"}]}]})
    status, body, _ = call(models.router(), b'{"action": "ping"}')
    models_state = json.loads(body)["models"]
    assert status == 503 and models_state["sam2"]["registered"] is False
    assert models_state["langsam"] == {"registered": True, "workers": 1, "ready_workers": 0}


def test_a_batch_answers_one_line_per_record_in_order():
    models = FakeModels(replies={"langsam": Reply(400, b'{"error": {"code": "x", "message": "m"}}')})
    lines = [b'{"action": "sam2", "x": 1}', b"", b"not json", b'{"action": "langsam"}', b'{"action": "ping"}',
             b'{"action": "nope"}']
    status, body, content_type = call(models.router(), b"\n".join(lines) + b"\n", "application/jsonlines")
    assert status == 200 and content_type == "application/jsonlines"
    out = [json.loads(line) for line in body.splitlines()]
    assert len(out) == 5  # the blank line is not a record
    assert out[0] == {"action": "sam2"}
    assert out[1]["error"]["status"] == 400 and "line 3" in out[1]["error"]["message"]
    assert out[2]["error"] == {"code": "x", "message": "m", "status": 400}
    assert out[3]["action"] == "ping"
    assert out[4]["error"]["field"] == "action"


def test_a_model_that_does_not_answer_is_503():
    models = FakeModels(replies={"sam2": ConnectionRefusedError()})
    status, body, _ = call(models.router(), b'{"action": "sam2"}')
    assert status == 503 and json.loads(body)["error"]["code"] == "not_ready"


def test_model_errors_pass_through_with_the_clients_request_id():
    error = b'{"error": {"code": "invalid_image", "message": "corrupt", "field": "image", "request_id": "inner"}}'
    models = FakeModels(replies={"sam2": Reply(400, error)})
    status, body, _ = call(models.router(), b'{"action": "sam2"}')
    assert status == 400 and json.loads(body) == {
        "error": {"code": "invalid_image", "message": "corrupt", "field": "image", "request_id": "rid"}
    }


def test_raw_images_without_attributes_use_the_endpoints_default(caplog):
    models = FakeModels()
    router = Router(models.forward, models.descriptions.get, {"langsam": "langsam"},
                    default_attributes="action=langsam;text_prompt=person")
    with caplog.at_level("INFO", logger="segserve.requests"):
        assert call(router, b"\xff\xd8jpeg", "image/jpeg")[0] == 200
    assert models.calls[0][2]["X-Amzn-SageMaker-Custom-Attributes"] == "action=langsam;text_prompt=person"
    assert caplog.records[-1].getMessage().startswith("langsam 200 ")  # the request log names what was routed


def test_ping_with_stray_fields_is_refused_as_everywhere():
    status, body, _ = call(FakeModels().router(), b'{"action": "ping", "image": "x"}')
    assert status == 400 and json.loads(body)["error"]["field"] == "image"


def test_a_batch_starts_no_record_it_could_not_finish_in_time():
    import time

    class SlowModels(FakeModels):
        def forward(self, model, body, headers, on_slow=None):
            time.sleep(0.2)
            return super().forward(model, body, headers)

    models = SlowModels()
    router = Router(models.forward, models.descriptions.get, {"sam2": "sam2"}, batch_seconds=0.5)
    status, body, _ = call(router, b'{"action": "sam2"}\n' * 5, "application/jsonlines")
    out = [json.loads(line) for line in body.splitlines()]
    assert status == 200 and len(out) == 5
    assert [o.get("action") for o in out[:2]] == ["sam2", "sam2"]  # 0.2 s, then 0.4 s: the third would end at 0.6
    assert [o["error"]["status"] for o in out[2:]] == [504, 504, 504] and len(models.calls) == 2


def test_a_batch_never_answers_more_than_the_response_limit():
    big = Reply(200, b'{"action": "sam2", "pad": "' + b"x" * 3000 + b'"}')
    models = FakeModels(replies={"sam2": big})
    router = Router(models.forward, models.descriptions.get, {"sam2": "sam2"}, max_response_bytes=10_000)
    body = b"\n".join([b'{"action": "sam2"}'] * 6)
    status, reply, _ = call(router, body, "application/jsonlines")
    out = [json.loads(line) for line in reply.splitlines()]
    assert status == 200 and len(reply) <= 10_000 and len(out) == 6
    assert out[0]["action"] == "sam2" and out[-1]["error"]["status"] == 413
    assert len(models.calls) < 6  # records past the limit are not run


def test_a_body_over_the_limit_is_a_413_that_says_why_and_is_not_forwarded():
    models = FakeModels()
    router = Router(models.forward, models.descriptions.get, {"sam2": "sam2"}, max_request_bytes=100)
    assert call(router, b'{"action": "sam2", "pad": "' + b"x" * 60 + b'"}')[0] == 200
    status, body, _ = call(router, b'{"action": "sam2", "pad": "' + b"x" * 80 + b'"}')
    error = json.loads(body)["error"]
    assert status == 413 and error["code"] == "payload_too_large" and error["field"] == "body"
    assert "109 bytes, over this endpoint's 100 byte limit" in error["message"]
    assert len(models.calls) == 1


def test_sam3_on_an_endpoint_without_it_is_a_clear_400_and_the_others_still_route():
    models = FakeModels()
    router = models.router()  # routes langsam and sam2 only: deployed without SAM 3's weights
    status, reply, _ = call(router, b'{"action": "sam3", "image_id": "abc", "text_prompt": "dog"}')
    error = json.loads(reply)["error"]
    assert status == 400 and error["code"] == "not_deployed" and error["field"] == "action"
    assert "does not deploy sam3" in error["message"] and models.calls == []
    assert call(router, b'{"action": "sam2", "image_id": "abc", "x": 1, "y": 2}')[0] == 200
    assert call(router, b'{"action": "ping"}')[0] == 200


def test_sam3_goes_to_its_model_and_ping_covers_it():
    models = FakeModels(descriptions={"router": READY, "langsam": READY, "sam2": READY, "sam3": READY})
    router = Router(models.forward, models.descriptions.get, {"langsam": "langsam", "sam2": "sam2", "sam3": "sam3"})
    body = b'{"action": "sam3", "image_id": "abc", "text_prompt": "dog"}'
    assert call(router, body)[0] == 200 and models.calls[-1][0] == "sam3"
    status, reply, _ = call(router, b'{"action": "ping"}')
    assert status == 200 and set(json.loads(reply)["models"]) == {"router", "langsam", "sam2", "sam3"}
    models.descriptions["sam3"] = [{"workers": [{"status": "UNLOADING"}]}]
    assert call(router, b'{"action": "ping"}')[0] == 503


class FlakyModels(FakeModels):
    """Answers TorchServe's "Worker died." to the first `failures` forwards of the record marked "flaky"."""

    def __init__(self, failures):
        super().__init__()
        self.failures = failures

    def forward(self, model, body, headers, on_slow=None):
        if b"flaky" in body and self.failures:
            self.failures -= 1
            self.calls.append((model, body, headers))
            return Reply(507, b'{"code": 507, "type": "InternalServerException", "message": "Worker died."}')
        return super().forward(model, body, headers)


def flaky_batch(failures, batch_seconds=600.0):
    models, waits = FlakyModels(failures), []
    router = Router(models.forward, models.descriptions.get, {"sam2": "sam2"}, batch_seconds=batch_seconds,
                    sleep=waits.append)
    body = b'{"action": "sam2", "n": 1}\n{"action": "sam2", "n": "flaky"}\n{"action": "sam2", "n": 3}\n'
    status, reply, _ = call(router, body, "application/jsonlines")
    assert status == 200
    return [json.loads(line) for line in reply.splitlines()], waits, models


def test_a_batch_record_that_meets_a_restarting_worker_is_retried_after_its_retry_after():
    out, waits, models = flaky_batch(failures=2)
    assert [o.get("action") for o in out] == ["sam2", "sam2", "sam2"]  # every record answered
    assert waits == [5, 5] and len(models.calls) == 5  # two failed tries of the flaky record, then its answer


def test_a_batch_gives_up_on_a_record_when_retrying_would_outlast_the_batch():
    out, waits, _ = flaky_batch(failures=100, batch_seconds=3.0)  # Retry-After 5 s does not fit in 3 s
    assert out[0]["action"] == "sam2" and out[2]["action"] == "sam2"
    assert out[1]["error"]["code"] == "model_restarting" and out[1]["error"]["status"] == 503 and waits == []


def test_a_batch_retries_a_record_a_bounded_number_of_times():
    from segserve.routing.router import BATCH_RETRIES

    out, waits, _ = flaky_batch(failures=100)
    assert out[1]["error"]["code"] == "model_restarting" and len(waits) == BATCH_RETRIES

"""TorchServe's fault answers, with the bodies TorchServe 0.12.0 really sends, mapped to honest errors by the router.

The bodies are GSON-pretty ErrorResponse objects ending in a newline (NettyUtils.sendJsonResponse); their
messages come from WorkerThread ("Worker died."), ApiUtils (the full queue / no worker), ModelManager (not
found) and ts/service.py ("Out of resources", "Prediction failed"). tests/integration/test_serving_faults.py
provokes the first three on a live server.
"""

from __future__ import annotations

import json

import pytest

from segserve.contract.errors import ModelRestarting, NotReady, Overloaded
from segserve.routing.faults import RetryAfter, Workers, WorkerStates
from segserve.contract.wire import Reply
from segserve.routing.router import Router


def torchserve_body(code: int, kind: str, message: str) -> bytes:
    return json.dumps({"code": code, "type": kind, "message": message}, indent=2).encode() + b"\n"


WORKER_DIED_SIGKILL = torchserve_body(507, "InternalServerException", "Worker died.")
WORKER_DIED_OTHERWISE = torchserve_body(500, "InternalServerException", "Worker died.")
QUEUE_FULL = torchserve_body(
    503, "ServiceUnavailableException",
    'Model "sam2" has no worker to serve inference request. Please use scale workers API to add workers. If this '
    "is a sequence inference, please check if it is closed, or expired; or exceeds maxSequenceJobQueueSize")
NOT_FOUND = torchserve_body(404, "ModelNotFoundException", "Model not found: sam2")
OUT_OF_RESOURCES = torchserve_body(507, "InternalServerException", "Out of resources")
PREDICTION_FAILED = torchserve_body(503, "InternalServerException", "Prediction failed")
OUR_OOM = (b'{"error":{"code":"out_of_memory","message":"out of memory: try a smaller image or fewer detections",'
           b'"request_id":"inner"}}')


def described(*statuses: str) -> list:
    """GET /models/sam2 as TorchServe answers it, reduced to what the router reads."""
    return [{"modelName": "sam2", "workers": [{"id": str(9000 + i), "status": s} for i, s in enumerate(statuses)]}]


class Endpoint:
    """A fake TorchServe behind the router: canned replies for sam2, a description per model, calls recorded."""

    def __init__(self, reply=None, sam2=("READY",), slow=False):
        self.reply = reply or Reply(200, b'{"action": "sam2"}')
        self.descriptions = {"router": described("READY"), "sam2": described(*sam2) if sam2 is not None else None}
        self.slow = slow  # no answer for a while: the transport calls on_slow, as LoopbackClient does
        self.forwarded, self.described = [], []

    def forward(self, model, body, headers, on_slow):
        self.forwarded.append(model)
        if self.slow:
            on_slow()
        if isinstance(self.reply, Exception):
            raise self.reply
        return self.reply

    def describe(self, model):
        self.described.append(model)
        return self.descriptions.get(model)

    def router(self, **options) -> Router:
        return Router(self.forward, self.describe, {"sam2": "sam2"}, retry_after=RetryAfter(7, 2), **options)


def ask(router: Router, body: bytes = b'{"action": "sam2"}', content_type: str = "application/json"):
    reply = router(body, content_type, {}, "rid")
    return reply.status, json.loads(reply.body) if content_type == "application/json" else reply.body, reply.headers


@pytest.mark.parametrize("body", [WORKER_DIED_SIGKILL, WORKER_DIED_OTHERWISE], ids=["sigkill-507", "exit-500"])
def test_a_worker_that_died_mid_request_is_503_model_restarting_never_out_of_memory(body):
    status = json.loads(body)["code"]
    got, answer, headers = ask(Endpoint(Reply(status, body)).router())
    assert got == 503 and headers == {"Retry-After": "7"}
    error = answer["error"]
    assert error["code"] == "model_restarting" and error["retry_after_s"] == 7
    assert "restarting" in error["message"] and "sam2" in error["message"]
    assert error["request_id"] == "rid"


def test_after_a_fault_the_next_request_looks_at_the_workers_again():
    endpoint = Endpoint(Reply(507, WORKER_DIED_SIGKILL))
    router = endpoint.router()
    ask(router)
    endpoint.descriptions["sam2"] = described("UNLOADING")  # TorchServe is restarting it
    got, answer, _ = ask(router)
    assert got == 503 and answer["error"]["code"] == "not_ready"
    # Nothing asked before the first (healthy-looking) request; after its fault, a look before forwarding.
    assert endpoint.described == ["sam2"] and endpoint.forwarded == ["sam2"]


def test_a_full_queue_is_503_overloaded_when_the_model_has_a_loaded_worker():
    endpoint = Endpoint(Reply(503, QUEUE_FULL))
    router = endpoint.router()
    got, answer, headers = ask(router)
    assert got == 503 and headers == {"Retry-After": "2"}
    assert answer["error"]["code"] == "overloaded" and answer["error"]["retry_after_s"] == 2
    assert "queue is full" in answer["error"]["message"]
    # The same 503 means "no worker" as well: only the workers' states tell which it was.
    assert endpoint.described == ["sam2"]


@pytest.mark.parametrize("workers", [(), ("UNLOADING",)], ids=["scaled-to-zero", "worker-not-loaded"])
def test_the_same_503_is_not_ready_when_no_worker_is_loaded(workers):
    endpoint = Endpoint(Reply(503, QUEUE_FULL))
    router = endpoint.router()
    router.workers.get("sam2")  # a view from before the worker went away: the request is forwarded
    endpoint.descriptions["sam2"] = described(*workers)
    got, answer, headers = ask(router)
    assert got == 503 and headers == {"Retry-After": "7"}
    assert answer["error"]["code"] == "not_ready" and endpoint.forwarded == ["sam2"]


def test_an_unregistered_model_is_503_not_ready():
    got, answer, headers = ask(Endpoint(Reply(404, NOT_FOUND), sam2=None).router())
    assert got == 503 and headers == {"Retry-After": "7"}
    assert answer["error"]["code"] == "not_ready" and "not registered" in answer["error"]["message"]


def test_a_real_out_of_memory_of_our_model_passes_through_as_507():
    got, answer, headers = ask(Endpoint(Reply(507, OUR_OOM)).router())
    assert got == 507 and headers == {}
    assert answer == {"error": {"code": "out_of_memory", "message": "out of memory: try a smaller image or fewer "
                                "detections", "request_id": "rid"}}


def test_torchserves_own_out_of_resources_is_507_out_of_memory():
    got, answer, _ = ask(Endpoint(Reply(507, OUT_OF_RESOURCES)).router())
    assert got == 507 and answer["error"]["code"] == "out_of_memory"


def test_a_handler_that_raised_is_500_whatever_torchserve_says():
    got, answer, headers = ask(Endpoint(Reply(503, PREDICTION_FAILED)).router())
    assert got == 500 and headers == {} and answer["error"]["code"] == "internal_error"


def test_a_healthy_model_is_forwarded_without_asking_the_management_api():
    """On a GPU host every describe runs nvidia-smi: a click must not pay one."""
    endpoint = Endpoint()
    router = endpoint.router()
    for _ in range(5):
        assert ask(router)[0] == 200
    assert endpoint.forwarded == ["sam2"] * 5 and endpoint.described == []


def test_a_request_without_an_answer_for_a_while_is_refused_when_no_worker_is_loaded():
    """TorchServe queues it, and after maxRetryTimeoutInSec of failed restarts nothing ever serves it: the
    router looks once the request is slow, answers 503 at once, and looks first for the next ones."""
    endpoint = Endpoint(sam2=("UNLOADING", "UNLOADING"), slow=True)
    router = endpoint.router()
    got, answer, headers = ask(router)
    assert got == 503 and headers == {"Retry-After": "7"}
    assert answer["error"]["code"] == "not_ready" and "0 of 2" in answer["error"]["message"]
    assert endpoint.forwarded == ["sam2"] and endpoint.described == ["sam2"]
    router.workers.forget("sam2")  # a second later the view has expired
    got, answer, _ = ask(router)
    assert got == 503 and answer["error"]["code"] == "not_ready"
    assert endpoint.forwarded == ["sam2"], "a model in doubt is looked at before anything is queued for it"
    # Once it is seen ready again, its requests go straight through again.
    endpoint.descriptions["sam2"], endpoint.slow = described("READY"), False
    router.workers.forget("sam2")
    assert ask(router)[0] == 200 and ask(router)[0] == 200
    assert endpoint.described == ["sam2"] * 3 and endpoint.forwarded == ["sam2"] * 3


def test_a_slow_request_to_a_model_with_a_loaded_worker_goes_on():
    endpoint = Endpoint(slow=True)
    got, _, _ = ask(endpoint.router())
    assert got == 200 and endpoint.described == ["sam2"] and endpoint.forwarded == ["sam2"]


def test_when_torchserve_cannot_describe_the_model_the_request_is_forwarded_anyway():
    endpoint = Endpoint(sam2=None)
    assert ask(endpoint.router())[0] == 200 and endpoint.forwarded == ["sam2"]


def test_a_model_that_does_not_answer_in_time_is_504_and_one_that_refuses_connections_503():
    got, answer, headers = ask(Endpoint(TimeoutError("timed out")).router())
    assert got == 504 and answer["error"]["code"] == "timed_out" and headers == {}
    got, answer, headers = ask(Endpoint(ConnectionRefusedError()).router())
    assert got == 503 and answer["error"]["code"] == "not_ready" and headers == {"Retry-After": "7"}


def test_a_batch_line_carries_the_status_and_the_wait_in_its_error():
    router = Endpoint(Reply(507, WORKER_DIED_SIGKILL)).router(batch_seconds=5.0)  # no time to retry after 7 s
    got, body, headers = ask(router, b'{"action": "sam2"}\n', "application/jsonlines")
    (line,) = [json.loads(line) for line in body.splitlines()]
    assert got == 200 and headers == {}  # the batch itself was answered
    assert line["error"]["code"] == "model_restarting"
    assert line["error"]["status"] == 503 and line["error"]["retry_after_s"] == 7


def test_worker_states_are_remembered_for_their_ttl():
    now = [100.0]
    calls = []

    def describe(model):
        calls.append(model)
        return described("READY", "UNLOADING")

    states = WorkerStates(describe, ttl_s=1.0, clock=lambda: now[0])
    assert states.get("sam2") == Workers(total=2, ready=1)
    now[0] += 0.9
    states.get("sam2")
    assert calls == ["sam2"]
    states.get("sam2", fresh=True)
    now[0] += 1.0
    states.get("sam2")
    assert calls == ["sam2"] * 3


@pytest.mark.parametrize("kind, code", [(NotReady, "not_ready"), (ModelRestarting, "model_restarting"),
                                        (Overloaded, "overloaded")])
def test_every_503_says_when_to_retry_in_its_header_and_its_body(kind, code):
    error = kind("m", retry_after_s=3)
    assert (error.status, error.code, error.headers) == (503, code, {"Retry-After": "3"})
    assert error.to_dict() == {"error": {"code": code, "message": "m", "retry_after_s": 3}}

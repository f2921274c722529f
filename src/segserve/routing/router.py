"""The router: ONE model that TorchServe's /invocations resolves, forwarding each request by `action`.

SageMaker cannot add `?model_name=` and TorchServe resolves /invocations only for the single model
loaded at startup, so this is that model. Bodies go to the target model unchanged (JSON, or a raw image
with its custom attributes); JSON Lines batches are split and answered line by line, in order, a bad
line becoming an error object on its line. `ping` is answered here from the management API, and so are
SageMaker's session requests (sessions.py). With several sam2 (or sam3) replicas, each image goes to its
home one (affinity.py). An action whose model this endpoint does not deploy (sam3 without its weights) is a
400 `not_deployed`.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace

from segserve.contract.errors import InvalidRequest, NotDeployed, NotReady, PayloadTooLarge, ServiceError, TimedOut
from segserve.contract.requests import ACTIONS, parse_request
from segserve.contract.sessions import CLOSED_SESSION_HEADER, NEW_SESSION_HEADER, Session, SessionRequest, session_request
from segserve.contract.wire import (
    CACHE_HEADER, CUSTOM_ATTRIBUTES, CUSTOM_ATTRIBUTES_HEADER, DEFAULT_MAX_RESPONSE_BYTES, JSON, JSON_LINES, Body,
    Reply, decode_body, dump_json, error_body, header,
)
from segserve.routing.access_log import log_request, request_label
from segserve.routing.affinity import ImageHomes
from segserve.routing.faults import Describe, RetryAfter, WorkerStates, no_ready_worker, torchserve_error

log = logging.getLogger(__name__)

_ERROR_LINE_ROOM = 320  # bytes kept free per record for a "not answered" error line
# A batch record that meets a transient 503 (a worker restarting, a full queue) is tried again after its
# Retry-After, this many times at most, and only while the batch can still finish in time.
BATCH_RETRIES = 8

# (model name, body, headers, on_slow) → the model's response. The transport calls `on_slow()` once when the
# model has not started answering for a while; if it raises, the request is abandoned with that error.
Forward = Callable[[str, bytes, dict, Callable[[], None]], Reply]


class Router:
    def __init__(
        self,
        forward: Forward,
        describe: Describe,
        routes: Mapping[str, str],
        max_request_bytes: int | None = None,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        batch_seconds: float = float("inf"),
        default_attributes: str | None = None,
        retry_after: RetryAfter = RetryAfter(),
        worker_states_ttl_s: float = 1.0,
        homes: Sequence[ImageHomes] = (),
        session_ttl_s: int = 1200,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.forward = forward
        self.describe = describe
        self.routes = dict(routes)  # action → model name
        # The API's body limit. TorchServe's own (max_request_size) is set higher, so that a body a little over
        # this gets a 413 that says why rather than TorchServe's empty one or a reset connection.
        self.max_request_bytes = max_request_bytes
        self.max_response_bytes = max_response_bytes  # over TorchServe's max_response_size the worker dies
        self.batch_seconds = batch_seconds  # a batch must be answered within this (the router's own timeout)
        # For raw images sent without custom attributes: batch transform over a bucket cannot set any.
        self.default_attributes = default_attributes
        self.retry_after = retry_after
        self.workers = WorkerStates(describe, worker_states_ttl_s)
        self.homes = {home.action: home for home in homes}  # an action's replicas, chosen by image id
        self.session_ttl_s = session_ttl_s
        self.sleep = sleep

    def __call__(
        self, body: bytes, content_type: str | None, headers: Mapping[str, str], request_id: str | None = None
    ) -> Reply:
        started = time.perf_counter()
        request, reply = self._answer(body, content_type, headers, request_id)
        log_request(request_label(request, body), reply, started, request_id)
        return reply

    def _answer(
        self, body: bytes, content_type: str | None, headers: Mapping[str, str], request_id: str | None
    ) -> tuple[Body | None, Reply]:
        """(the decoded request, None if it was refused before decoding; the reply)"""
        request = None
        try:
            if self.max_request_bytes is not None and len(body) > self.max_request_bytes:
                raise PayloadTooLarge(
                    f"the body is {len(body):,} bytes, over this endpoint's {self.max_request_bytes:,} byte limit "
                    "(SageMaker real time allows 6 MB): send a smaller image, or the image by image_url or s3:// URL",
                    field="body")
            if not header(headers, CUSTOM_ATTRIBUTES) and self.default_attributes:
                headers = {**headers, CUSTOM_ATTRIBUTES: self.default_attributes}
            request = decode_body(body, content_type, headers)
            reply = self._route(request, body, content_type, headers)
        except ServiceError as error:
            return request, Reply(error.status, error_body(error, request_id), headers=error.headers)
        except Exception:
            log.exception("request %s failed in the router", request_id)
            return request, Reply(500, error_body(ServiceError("internal error in the router"), request_id))
        return request, _with_request_id(reply, request_id)

    def _route(self, request: Body, body: bytes, content_type: str | None, headers: Mapping[str, str]) -> Reply:
        if request.kind == "json_lines":
            return self._with_session(Reply(200, self._batch(body), JSON_LINES[0]), session_request(headers, None))
        if request.kind == "image":
            sessions = session_request(headers, None)
            if request.payload.get("action") == "ping":
                return self._with_session(self.readiness(), sessions)
            forwarded = {"Content-Type": content_type, CUSTOM_ATTRIBUTES_HEADER: header(headers, CUSTOM_ATTRIBUTES) or ""}
            reply = self._to_model(request.payload.get("action"), body, forwarded, request.payload, body)
            return self._with_session(reply, sessions)
        sessions = session_request(headers, request.payload)
        if sessions.control_only:
            return self._session_answer(sessions)
        return self._with_session(self._payload(request.payload, body), sessions)

    def _payload(self, payload: object, body: bytes) -> Reply:
        """A decoded JSON request: ping is answered here, the rest goes on unchanged as `body`."""
        action = payload.get("action") if isinstance(payload, dict) else None
        if action == "ping":
            parse_request(payload)  # the same validation as everywhere: no stray fields
            return self.readiness()
        return self._to_model(action, body, {"Content-Type": JSON}, payload, None)

    def _session_answer(self, sessions: SessionRequest) -> Reply:
        """A body that is only {"requestType": "NEW_SESSION" | "CLOSE"}: answered here, with its header."""
        if sessions.opens:
            session = Session.new(self.session_ttl_s)
            body = {"session": {"id": session.id, "expires": session.expires_text}}
            return Reply(200, dump_json(body), headers={NEW_SESSION_HEADER: session.header})
        body = {"session": {"id": sessions.session_id, "closed": True}}
        return Reply(200, dump_json(body), headers={CLOSED_SESSION_HEADER: sessions.session_id})

    def _with_session(self, reply: Reply, sessions: SessionRequest) -> Reply:
        """NEW_SESSION on an ordinary request: the answer opens the session, if it is a success."""
        if not sessions.opens or reply.status != 200:
            return reply
        session = Session.new(self.session_ttl_s)
        return replace(reply, headers={**reply.headers, NEW_SESSION_HEADER: session.header})

    def readiness(self) -> Reply:
        """Each model's workers: 200 when every routed model has a READY worker, else 503."""
        models = {}
        for name in ["router", *self._models()]:
            versions = self.describe(name) or []
            workers = [w for version in versions for w in version.get("workers", [])]
            ready = sum(1 for w in workers if w.get("status") == "READY")
            models[name] = {"registered": bool(versions), "workers": len(workers), "ready_workers": ready}
        healthy = all(m["ready_workers"] > 0 for m in models.values())
        body = {"action": "ping", "status": "ready" if healthy else "not_ready", "models": models}
        return Reply(200 if healthy else 503, dump_json(body))

    def _models(self) -> list[str]:
        """Every model the routes send to, replicas included."""
        names = []
        for action, model in self.routes.items():
            names.extend(self.homes[action].models if action in self.homes else [model])
        return list(dict.fromkeys(names))

    def _to_model(self, action: object, body: bytes, headers: dict, payload: object, raw_image: bytes | None) -> Reply:
        model = self.routes.get(action) if isinstance(action, str) else None
        if model is None and action in ACTIONS:
            raise NotDeployed(
                f"this endpoint does not deploy {action}: it serves {', '.join(sorted(self.routes))}. "
                f"Deploy it with weights that include {action} (README: SAM 3 weights)", field="action")
        if model is None:
            shown = "missing" if action is None else repr(action)
            raise InvalidRequest(f"action is {shown}; valid actions: {', '.join(ACTIONS)}", field="action")
        if action in self.homes:
            model = self.homes[action].model_for(payload, raw_image)
        if self.workers.doubted(model):  # after a fault: look before queueing it (no describe otherwise)
            self._refuse_without_ready_worker(model)
        try:
            response = self.forward(model, body, headers, lambda: self._refuse_without_ready_worker(model))
        except TimeoutError as exc:
            raise TimedOut(f"model {model!r} did not answer in time; retry later") from exc
        except OSError as exc:
            self.workers.forget(model)
            raise NotReady(f"model {model!r} did not answer ({exc.__class__.__name__}); "
                           f"retry after {self.retry_after.restart_s} s", self.retry_after.restart_s) from exc
        if response.status >= 400 and not _is_our_error(response.body):
            self.workers.forget(model)
            error = torchserve_error(model, response, self.workers, self.retry_after)
            log.warning("model %s: TorchServe answered %s %r → %s", model, response.status,
                        response.body[:200], error.code)
            raise error
        cache = header(response.headers, CACHE_HEADER)
        return Reply(response.status, response.body, response.content_type or JSON,
                     headers={CACHE_HEADER: cache} if cache else {})

    def _refuse_without_ready_worker(self, model: str) -> None:
        """Raises 503 not_ready when `model` has workers but none loaded: TorchServe would hold the request
        for a worker that may never come back (it stops restarting after maxRetryTimeoutInSec)."""
        workers = self.workers.get(model)
        if workers is not None and workers.ready == 0:
            raise no_ready_worker(model, workers, self.retry_after)

    def _batch(self, body: bytes) -> bytes:
        """One JSON line out per record in, same order; a bad record gets an error object, never a failed batch.

        Over max_response_bytes TorchServe would kill the worker, so each record keeps room for an error
        line, and once the answers fill the rest, the remaining records get a 413 error line instead.
        Likewise a record that could not finish within `batch_seconds` (judged by the slowest record so
        far) is not started: it gets a 504 error line. A record that meets a transient 503 (model_restarting,
        overloaded, not_ready) waits its Retry-After and runs again while the batch has time, so a worker killed
        mid-job costs no record; only records wrong in themselves get error lines.
        """
        records = [(number, line) for number, line in enumerate(body.splitlines(), start=1) if line.strip()]
        budget = self.max_response_bytes - _ERROR_LINE_ROOM * len(records)
        started, slowest = time.monotonic(), 0.0
        lines, used = [], 0
        for number, line in records:
            if time.monotonic() - started + slowest > self.batch_seconds:
                lines.append(_error_line(TimedOut(
                    f"line {number} not answered: the batch would outlast its time limit; "
                    "send fewer records per request")))
                continue
            record_started = time.monotonic()
            deadline = started + self.batch_seconds - slowest
            answer = self._record(number, line, deadline) if used < budget else None
            slowest = max(slowest, time.monotonic() - record_started)
            if answer is None or used + len(answer) > budget:
                used = budget  # full: the records after this one are not run either
                answer = _error_line(PayloadTooLarge(
                    f"line {number} not answered: the batch answer would pass {self.max_response_bytes:,} bytes; "
                    "send fewer records per request"))
            else:
                used += len(answer) + 1
            lines.append(answer)
        return b"\n".join(lines) + b"\n"

    def _record(self, number: int, line: bytes, deadline: float = float("inf")) -> bytes:
        try:
            payload = json.loads(line)
        except ValueError as exc:
            return _error_line(InvalidRequest(f"line {number} is not valid JSON: {exc}"))
        for attempt in range(BATCH_RETRIES + 1):
            try:
                return _batch_line(self._payload(payload, line))
            except NotReady as error:  # transient: the record itself may be fine
                if attempt == BATCH_RETRIES or time.monotonic() + error.retry_after_s > deadline:
                    return _error_line(error)
                log.info("batch line %d: %s; trying again in %d s", number, error.code, error.retry_after_s)
                self.sleep(error.retry_after_s)
            except ServiceError as error:
                return _error_line(error)


def _error_line(error: ServiceError) -> bytes:
    return _batch_line(Reply(error.status, error_body(error, None)))


def _batch_line(reply: Reply) -> bytes:
    """A reply as one line. Answers are compact one-line JSON already (dump_json) and go as they are, unparsed
    (they can be megabytes); errors are rewritten to carry their HTTP status."""
    if reply.status < 400:
        return reply.body
    value = json.loads(reply.body)
    if isinstance(value.get("error"), dict):
        value["error"]["status"] = reply.status
        value["error"].pop("request_id", None)  # the batch request's id is the one that matters
    return dump_json(value)


def _with_request_id(reply: Reply, request_id: str | None) -> Reply:
    """A model's error names the model's request id; the client knows the router's. Keep both in the log."""
    value = json.loads(reply.body) if reply.status >= 400 and request_id else None
    if not (isinstance(value, dict) and isinstance(value.get("error"), dict)):
        return reply
    model_request = value["error"].get("request_id")
    if model_request and model_request != request_id:
        log.info("request %s was forwarded as %s", request_id, model_request)
    value["error"]["request_id"] = request_id
    return replace(reply, body=dump_json(value))


def _is_our_error(body: bytes) -> bool:
    try:
        return isinstance(json.loads(body).get("error"), dict)
    except (ValueError, AttributeError):
        return False

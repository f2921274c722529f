"""One HTTP invocation → one reply: content types in, the error boundary, JSON out.

This is the only place where exceptions become statuses: a `ServiceError` keeps its status and public
message; out-of-memory becomes 507; anything else is a bug, logged with its traceback and answered
with a 500 that carries only the request id. No traceback ever reaches a client.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Protocol

import torch
from pydantic import BaseModel

from segserve.contract.errors import InvalidRequest, OutOfMemory, PayloadTooLarge, ServiceError, UnsupportedMediaType
from segserve.contract.requests import PingRequest, parse_request
from segserve.contract.responses import ModelInfo, dump_answer
from segserve.contract.wire import CACHE_HEADER, DEFAULT_MAX_RESPONSE_BYTES, Reply, decode_body, dump_json, error_body
from segserve.models.runtime import Runtime, StageTimer

log = logging.getLogger(__name__)


class Service(Protocol):
    action: str

    def run(self, request, raw_image: bytes | None, timer: StageTimer) -> BaseModel: ...


class Invoker:
    """Runs one request against this worker's services and always returns a Reply."""

    def __init__(
        self,
        services: list[Service],
        runtime: Runtime,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        model: dict | None = None,  # {"name", "version"} of the serving model, echoed in every answer
    ):
        self.services = {service.action: service for service in services}
        self.runtime = runtime
        self.max_response_bytes = max_response_bytes
        self.model = ModelInfo(**model) if model else None

    def __call__(
        self, body: bytes, content_type: str | None, headers: Mapping[str, str], request_id: str | None = None
    ) -> Reply:
        started = time.perf_counter()
        try:
            decoded = decode_body(body, content_type, headers)
            if decoded.kind == "json_lines":
                raise UnsupportedMediaType("JSON Lines batches are answered by /invocations (the router), not a model")
            raw_image = decoded.raw if decoded.kind == "image" else None
            request = parse_request(decoded.payload, strict=raw_image is None, raw_image=raw_image is not None)
            result, timings, cache = self._run(request, raw_image, started)
            if len(result) > self.max_response_bytes:
                raise PayloadTooLarge(
                    f"the response would be {len(result):,} bytes, over the {self.max_response_bytes:,} limit: "
                    "ask for fewer masks (max_detections, multimask=false), mask_format=rle, or no return_images"
                )
            return Reply(200, result, headers={CACHE_HEADER: cache} if cache else {}, timings=timings)
        except ServiceError as error:
            log.info("request %s: %s %s", request_id, error.status, error.message)
            return Reply(error.status, error_body(error, request_id), headers=error.headers)
        except (MemoryError, torch.OutOfMemoryError):
            log.exception("request %s ran out of memory", request_id)
            error = OutOfMemory("out of memory: try a smaller image or fewer detections")
            return Reply(507, error_body(error, request_id))
        except Exception:
            log.exception("request %s failed", request_id)
            return Reply(500, error_body(ServiceError("internal error; the log has the details"), request_id))

    def _run(self, request, raw_image: bytes | None, started: float) -> tuple[bytes, dict[str, float], str | None]:
        """(the answer, its timings, its cache hit | miss if it has one)"""
        if isinstance(request, PingRequest):
            model = self.model.model_dump() if self.model else None
            ping = {"action": "ping", "status": "ready", "actions": sorted(self.services), "model": model}
            return dump_json(ping), {}, None
        service = self.services.get(request.action)
        if service is None:
            raise InvalidRequest(
                f"this model serves {', '.join(sorted(self.services))}; send action {request.action!r} "
                "to /invocations, which routes by action", field="action",
            )
        timer = StageTimer(self.runtime)
        answer = service.run(request, raw_image, timer)
        timings = {name: round(ms, 2) for name, ms in timer.stages.items()}
        timings["total"] = round((time.perf_counter() - started) * 1000.0, 2)
        answer.timings_ms = timings
        if self.model:
            answer.model = self.model
        return dump_answer(answer), timings, getattr(answer, "cache", None)

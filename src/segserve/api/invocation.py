"""One HTTP invocation → one reply: content types in, the error boundary, JSON out.

This is the only place where exceptions become statuses: a `ServiceError` keeps its status and public
message; out-of-memory becomes 507; anything else is a bug, logged with its traceback and answered
with a 500 that carries only the request id. No traceback ever reaches a client.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol
from urllib.parse import unquote

import torch

from segserve.errors import InvalidRequest, OutOfMemory, PayloadTooLarge, ServiceError, UnsupportedMediaType
from segserve.models.runtime import Runtime, StageTimer
from segserve.api.schemas import PingRequest, parse_request

log = logging.getLogger(__name__)

JSON = "application/json"
JSON_LINES = ("application/jsonlines", "application/x-jsonlines", "application/jsonl")
IMAGE_TYPES = ("image/jpeg", "image/png", "image/webp", "image/bmp", "image/tiff", "image/gif", "application/x-image")
CUSTOM_ATTRIBUTES = "x-amzn-sagemaker-custom-attributes"
DEFAULT_MAX_RESPONSE_BYTES = 6 * 1024 * 1024


class Service(Protocol):
    action: str

    def run(self, request, raw_image: bytes | None, timer: StageTimer) -> dict: ...


@dataclass(frozen=True)
class Reply:
    status: int
    body: bytes
    content_type: str = JSON
    timings: dict[str, float] = field(default_factory=dict)  # ms per stage, for metrics
    # Response headers for the client (e.g. Retry-After, SageMaker session headers); one value per name.
    headers: dict[str, str] = field(default_factory=dict)


def media_type(content_type: str | None) -> str:
    """'Application/JSON; charset=utf-8' → 'application/json'."""
    return (content_type or "").split(";", 1)[0].strip().lower()


def header(headers: Mapping[str, str], name: str) -> str | None:
    """A request header, whatever case the client or the server used for its name."""
    wanted = name.lower()
    return next((value for key, value in headers.items() if key.lower() == wanted), None)


def parse_custom_attributes(text: str | None) -> dict:
    """SageMaker's `X-Amzn-SageMaker-Custom-Attributes`: 'action=langsam;text_prompt=black jeans;box=[1,2,3,4]'.

    Values are percent-decoded strings; JSON arrays/objects are parsed; numbers and booleans are left to
    the (lax) schema validation of this string-typed source.
    """
    attributes: dict = {}
    for part in (text or "").split(";"):
        if not part.strip():
            continue
        key, sep, value = part.partition("=")
        if not sep or not key.strip():
            raise InvalidRequest(f"custom attribute {part.strip()!r} is not key=value", field=CUSTOM_ATTRIBUTES)
        value = unquote(value.strip())
        if value[:1] in "[{":
            try:
                value = json.loads(value)
            except ValueError:
                raise InvalidRequest(f"custom attribute {key.strip()} is not valid JSON", field=key.strip()) from None
        attributes[key.strip()] = value
    return attributes


def decode_json(body: bytes) -> object:
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidRequest(f"the body is not valid JSON: {exc}") from None


def dump_json(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def error_body(error: ServiceError, request_id: str | None) -> bytes:
    body = error.to_dict()
    if request_id:
        body["error"]["request_id"] = request_id
    return dump_json(body)


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
        self.model = model

    def __call__(
        self, body: bytes, content_type: str | None, headers: Mapping[str, str], request_id: str | None = None
    ) -> Reply:
        started = time.perf_counter()
        try:
            payload, raw_image = self._decode(body, media_type(content_type), header(headers, CUSTOM_ATTRIBUTES))
            request = parse_request(payload, strict=raw_image is None, raw_image=raw_image is not None)
            result, timings = self._run(request, raw_image, started)
            if len(result) > self.max_response_bytes:
                raise PayloadTooLarge(
                    f"the response would be {len(result):,} bytes, over the {self.max_response_bytes:,} limit: "
                    "ask for fewer masks (max_detections, multimask=false), mask_format=rle, or no return_images"
                )
            return Reply(200, result, timings=timings)
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

    def _decode(self, body: bytes, media: str, attributes: str | None) -> tuple[object, bytes | None]:
        if media == JSON or (media == "" and body[:1] == b"{"):
            return decode_json(body), None
        if media in IMAGE_TYPES:
            return parse_custom_attributes(attributes), body
        if media in JSON_LINES:
            raise UnsupportedMediaType("JSON Lines batches are answered by /invocations (the router), not a model")
        raise UnsupportedMediaType(
            f"content type {media or 'missing'!r} is not supported: use application/json, "
            f"application/jsonlines or an image type ({', '.join(IMAGE_TYPES)})"
        )

    def _run(self, request, raw_image: bytes | None, started: float) -> tuple[bytes, dict[str, float]]:
        if isinstance(request, PingRequest):
            ping = {"action": "ping", "status": "ready", "actions": sorted(self.services), "model": self.model}
            return dump_json(ping), {}
        service = self.services.get(request.action)
        if service is None:
            raise InvalidRequest(
                f"this model serves {', '.join(sorted(self.services))}; send action {request.action!r} "
                "to /invocations, which routes by action", field="action",
            )
        timer = StageTimer(self.runtime)
        response = service.run(request, raw_image, timer)
        timings = {name: round(ms, 2) for name, ms in timer.stages.items()}
        timings["total"] = round((time.perf_counter() - started) * 1000.0, 2)
        response["timings_ms"] = timings
        if self.model:
            response["model"] = self.model
        return dump_json(response), timings

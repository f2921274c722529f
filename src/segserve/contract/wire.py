"""The bytes on the wire: content types, header lookup, custom attributes, and one way to read a body.

`decode_body` is the only place that sorts a request body into JSON, a raw image or JSON Lines: the router and
every model worker call it, so they accept and refuse the same things with the same words.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import unquote

from segserve.contract.errors import InvalidRequest, ServiceError, UnsupportedMediaType

JSON = "application/json"
JSON_LINES = ("application/jsonlines", "application/x-jsonlines", "application/jsonl")
IMAGE_TYPES = ("image/jpeg", "image/png", "image/webp", "image/bmp", "image/tiff", "image/gif", "application/x-image")
CUSTOM_ATTRIBUTES = "x-amzn-sagemaker-custom-attributes"  # looked up in any case (header())
CUSTOM_ATTRIBUTES_HEADER = "X-Amzn-SageMaker-Custom-Attributes"  # as SageMaker spells it, when we send it
# An answer's `cache` (hit | miss) as a header too, so that the router can log it without parsing the body.
CACHE_HEADER = "X-Segserve-Cache"
# TorchServe's max_response_size as the entrypoint sets it for real time (6.25 MiB; SageMaker's own limit is 6 MB):
# an answer over it kills the worker that sends it. An answer's body keeps RESPONSE_FRAME_BYTES below it, room
# for TorchServe's framing and headers: DEFAULT_MAX_RESPONSE_BYTES is the largest body a worker sends.
TORCHSERVE_MAX_RESPONSE_BYTES = 6_553_600
RESPONSE_FRAME_BYTES = 53_600
DEFAULT_MAX_RESPONSE_BYTES = TORCHSERVE_MAX_RESPONSE_BYTES - RESPONSE_FRAME_BYTES


@dataclass(frozen=True)
class Reply:
    """One HTTP answer, whoever produced it: a model worker (Invoker), the router, or a loopback call."""

    status: int
    body: bytes
    content_type: str = JSON
    # Response headers (e.g. Retry-After, SageMaker session headers); one value per name, lower case when read.
    headers: dict[str, str] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)  # ms per stage, for metrics

    def json(self) -> object | None:
        """The body as JSON, or None when it is not JSON (e.g. TorchServe's own plain-text errors)."""
        try:
            return json.loads(self.body)
        except (ValueError, UnicodeDecodeError):
            return None


@dataclass(frozen=True)
class Body:
    """A request body, sorted by its content type."""

    kind: Literal["json", "image", "json_lines"]
    payload: object = None  # the decoded JSON object, or the custom attributes of a raw image
    raw: bytes = b""  # the image file (kind "image") or the JSON Lines text (kind "json_lines")


def media_type(content_type: str | None) -> str:
    """'Application/JSON; charset=utf-8' → 'application/json'."""
    return (content_type or "").split(";", 1)[0].strip().lower()


def header(headers: Mapping[str, str], name: str) -> str | None:
    """A request header, whatever case the client or the server used for its name."""
    wanted = name.lower()
    return next((value for key, value in headers.items() if key.lower() == wanted), None)


def decode_body(body: bytes, content_type: str | None, headers: Mapping[str, str]) -> Body:
    """JSON (also a body without a type that starts with `{`), an image type (fields in the custom attributes),
    or JSON Lines; anything else → 415 naming what is accepted."""
    media = media_type(content_type)
    if media == JSON or (media == "" and body[:1] == b"{"):
        return Body("json", decode_json(body))
    if media in IMAGE_TYPES:
        return Body("image", parse_custom_attributes(header(headers, CUSTOM_ATTRIBUTES)), body)
    if media in JSON_LINES:
        return Body("json_lines", raw=body)
    raise UnsupportedMediaType(
        f"content type {media or 'missing'!r} is not supported: use {JSON}, {JSON_LINES[0]} (a batch) "
        f"or an image type ({', '.join(IMAGE_TYPES)})"
    )


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

"""The web UI on AWS: API Gateway → this Lambda → SageMaker InvokeEndpoint (deploy/template.yaml).

`GET /` and `GET /<file>` answer the page's own files (ui_file), so the page and `/invocations` share one
origin and the browser needs no CORS. `POST /invocations` forwards the UI's JSON body unchanged and answers
with the endpoint's own status and body: a 400 from the model stays a 400 with the model's `{"error": {...}}`. What the model cannot say is added here: 413 for
a body over the limit, 400 for a body that is not a JSON object, 502 when the endpoint cannot be reached or
does not answer, 503/429 when SageMaker says it is not ready or throttles. SageMaker's own error messages
(they name the AWS account) go to the log, never to the browser.

Environment: ENDPOINT_NAME (required); UI_DIR (the page's files; default: web/ beside this file, where
deploy/lambda_package.py puts them); ALLOWED_ORIGINS (comma-separated origins allowed by CORS, or "*");
MAX_BODY_BYTES (default 6,000,000: under InvokeEndpoint's 6 MB); READ_TIMEOUT_S (default 28: API Gateway
gives up at 29-30 s). Stateful sessions pass through as the X-Amzn-SageMaker-Session-Id request header and
the X-Amzn-SageMaker-New-Session-Id / -Closed-Session-Id answer headers.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

from segserve.client.endpoint import JSON, NEW_SESSION, Answer, SegmentationClient, runtime_client
from segserve.client.errors import EndpointError, EndpointUnreachable

log = logging.getLogger()
log.setLevel(logging.INFO)

SESSION_HEADER = "x-amzn-sagemaker-session-id"
ANSWER_SESSION_HEADERS = ("X-Amzn-SageMaker-New-Session-Id", "X-Amzn-SageMaker-Closed-Session-Id")
# SageMaker's own refusals, as the browser should see them.
SAGEMAKER_STATUSES = {"ModelNotReadyException": 503, "ServiceUnavailable": 503, "ThrottlingException": 429}

# The page's files: these types only, nothing larger than this (an answer's body must stay under Lambda's 6 MB).
UI_CONTENT_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
                    ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml", ".png": "image/png",
                    ".ico": "image/x-icon"}
UI_TEXT_TYPES = (".html", ".js", ".css", ".svg")
MAX_UI_FILE_BYTES = 4 * 1024 * 1024
# As the local UiEndpoint (serving/plugins): scripts, styles and fonts from this origin only; connect-src stays
# open, since the endpoint URL (and an image URL the page reads) is the user's choice. no-cache + ETag: a new
# deployment is seen at the next load, an unchanged file costs a 304.
UI_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob: "
                               "http: https:; connect-src 'self' http: https:; object-src 'none'; base-uri 'none'; "
                               "form-action 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


@dataclass(frozen=True)
class Settings:
    endpoint_name: str
    allowed_origins: tuple[str, ...]
    max_body_bytes: int
    read_timeout_s: float
    runtime_url: str | None  # AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME / AWS_ENDPOINT_URL, read by boto3 itself

    @classmethod
    def from_env(cls) -> Settings:
        origins = tuple(o.strip() for o in os.environ.get("ALLOWED_ORIGINS", "").split(",") if o.strip())
        return cls(os.environ["ENDPOINT_NAME"], origins, int(os.environ.get("MAX_BODY_BYTES", "6000000")),
                   float(os.environ.get("READ_TIMEOUT_S", "28")),
                   os.environ.get("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME") or os.environ.get("AWS_ENDPOINT_URL"))


_clients: dict[Settings, SegmentationClient] = {}  # one per configuration, reused across warm invocations


def lambda_handler(event: dict, context) -> dict:
    request_id = getattr(context, "aws_request_id", None)
    headers = {k.lower(): v for k, v in (event.get("headers") or {}).items()}
    http = event.get("requestContext", {}).get("http", {})
    method = event.get("httpMethod") or http.get("method")
    path = event.get("rawPath") or event.get("path") or http.get("path")  # none: an event made by hand
    if path is not None and path.rstrip("/").rsplit("/", 1)[-1] != "invocations":
        if method != "GET":
            return error(405, "method_not_allowed", "GET the page's files; POST requests to /invocations", {},
                         request_id)
        proxied = (event.get("pathParameters") or {}).get("proxy")
        return ui_file(proxied if proxied is not None else unquote(path), headers.get("if-none-match"), request_id)
    try:
        settings = Settings.from_env()
    except (KeyError, ValueError) as exc:  # the stack's configuration, not the caller's request
        log.error("misconfigured: %r (set ENDPOINT_NAME; MAX_BODY_BYTES and READ_TIMEOUT_S are numbers)", exc)
        return error(500, "misconfigured", "the backend is misconfigured (see its log)", {}, request_id)
    cors = cors_headers(settings, headers.get("origin"))
    if method == "OPTIONS":
        return respond(204, b"", cors)
    if method != "POST":
        return error(405, "method_not_allowed", "POST a JSON request (docs/API.md)", cors, request_id)
    return invocation(settings, event, headers, cors, request_id)


def invocation(settings: Settings, event: dict, headers: dict, cors: dict, request_id: str | None) -> dict:
    """POST /invocations: the body checked, then forwarded."""
    body = event.get("body") or ""
    try:
        data = base64.b64decode(body) if event.get("isBase64Encoded") else body.encode("utf-8")
    except ValueError:
        return error(400, "invalid_request", "the body is not valid base64", cors, request_id)
    if len(data) > settings.max_body_bytes:
        return error(413, "payload_too_large", f"the request is {len(data):,} bytes; the limit is "
                     f"{settings.max_body_bytes:,} (send a smaller image, or an image_url)", cors, request_id)
    try:
        if not isinstance(json.loads(data), dict):
            raise ValueError
    except ValueError:
        return error(400, "invalid_request", "the body must be a JSON object (docs/API.md)", cors, request_id)
    return forward(settings, data, headers.get(SESSION_HEADER), cors, request_id)


def forward(settings: Settings, data: bytes, session_id: str | None, cors: dict, request_id: str | None) -> dict:
    client = _clients.get(settings)
    if client is None:
        client = _clients[settings] = SegmentationClient(
            settings.endpoint_name, runtime=runtime_client(read_timeout=settings.read_timeout_s))
    try:
        answer = client.invoke(data, session_id=session_id)
    except EndpointError as exc:
        if exc.from_model and exc.status >= 400:
            retry = {"Retry-After": str(exc.retry_after_s)} if exc.retry_after_s else {}
            return respond(exc.status, exc.body.encode(), {**cors, "Content-Type": JSON, **retry})
        log.warning("endpoint %s: %s", settings.endpoint_name, exc)  # SageMaker's message names the account
        if session_refused(exc, session_id):
            return error(400, "session_expired", "the endpoint no longer knows this session (expired, closed, or "
                         "its instance is gone): open a new one with NEW_SESSION", cors, request_id)
        if exc.from_model:  # no answer from the container (SageMaker's status 0)
            return error(502, "endpoint_unreachable", "the model did not answer in time; try again", cors, request_id)
        status = SAGEMAKER_STATUSES.get(exc.code, 502)
        return error(status, "endpoint_unavailable", "the segmentation endpoint is not available right now",
                     cors, request_id)
    except EndpointUnreachable as exc:
        log.warning("endpoint %s unreachable: %s", settings.endpoint_name, exc)
        return error(502, "endpoint_unreachable", "the segmentation endpoint could not be reached", cors, request_id)
    return respond(200, answer.data, {**cors, "Content-Type": answer.content_type or JSON, **session_headers(answer)})


def session_refused(exc: EndpointError, session_id: str | None) -> bool:
    """SageMaker itself (not the model) refused a request that named a session: the session is gone. The shape is
    SageMaker's ValidationError naming the session (the exact message is not documented; checked by substring)."""
    return (not exc.from_model and 400 <= exc.status < 500 and exc.code == "ValidationError"
            and bool(session_id) and session_id != NEW_SESSION and "session" in exc.message.lower())


def ui_file(name: str, if_none_match: str | None, request_id: str | None) -> dict:
    """GET of one of the page's files: `name` relative to UI_DIR ("" is index.html). Only a regular file of a known
    type inside UI_DIR (symlinks resolved) is answered; anything else, a dot file or `..` included, is a 404."""
    root = Path(os.environ.get("UI_DIR") or Path(__file__).with_name("web"))
    name = name.lstrip("/") or "index.html"
    suffix = Path(name).suffix.lower()
    segments = name.split("/")
    if suffix not in UI_CONTENT_TYPES or any(not s or s.startswith(".") or "\\" in s or "\0" in s for s in segments):
        return error(404, "not_found", "no such file in the web UI", {}, request_id)
    try:
        real_root = root.resolve(strict=True)
        path = (real_root / name).resolve(strict=True)
        if not path.is_relative_to(real_root) or not path.is_file() or path.stat().st_size > MAX_UI_FILE_BYTES:
            raise FileNotFoundError(name)
        data = path.read_bytes()
    except (OSError, ValueError):
        if not root.is_dir():
            log.error("UI_DIR %s is not a folder: the web UI is not packaged with this backend", root)
        return error(404, "not_found", "no such file in the web UI", {}, request_id)
    etag = '"' + hashlib.sha256(data).hexdigest()[:32] + '"'
    headers = {**UI_HEADERS, "ETag": etag, "Content-Type": UI_CONTENT_TYPES[suffix]}
    if if_none_match and etag in (tag.strip() for tag in if_none_match.split(",")):
        return respond(304, b"", headers)
    if suffix in UI_TEXT_TYPES:
        return respond(200, data, headers)
    return {"statusCode": 200, "headers": headers, "body": base64.b64encode(data).decode("ascii"),
            "isBase64Encoded": True}


def session_headers(answer: Answer) -> dict:
    headers = {}
    if answer.session_id:
        headers[ANSWER_SESSION_HEADERS[0]] = f"{answer.session_id}; Expires={answer.session_expires}"
    if answer.closed_session_id:
        headers[ANSWER_SESSION_HEADERS[1]] = answer.closed_session_id
    return headers


def cors_headers(settings: Settings, origin: str | None) -> dict:
    """CORS for the configured origins only; a browser on any other origin gets no CORS headers (and is refused)."""
    if "*" in settings.allowed_origins:
        allowed = "*"
    elif origin and origin in settings.allowed_origins:
        allowed = origin
    else:
        return {}
    return {
        "Access-Control-Allow-Origin": allowed,
        "Access-Control-Allow-Methods": "POST, OPTIONS",
        "Access-Control-Allow-Headers": f"Content-Type, {SESSION_HEADER}",
        "Access-Control-Expose-Headers": ", ".join(ANSWER_SESSION_HEADERS),
        "Access-Control-Max-Age": "600",
        "Vary": "Origin",
    }


def error(status: int, code: str, message: str, cors: dict, request_id: str | None) -> dict:
    body = {"error": {"code": code, "message": message, **({"request_id": request_id} if request_id else {})}}
    return respond(status, json.dumps(body).encode(), {**cors, "Content-Type": JSON})


def respond(status: int, body: bytes, headers: dict) -> dict:
    """An API Gateway proxy answer (REST and HTTP API alike)."""
    return {"statusCode": status, "headers": headers, "body": body.decode("utf-8", errors="replace"),
            "isBase64Encoded": False}

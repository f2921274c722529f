"""A loopback stand-in for API Gateway's HTTP API in front of the UI's Lambda: the routes of deploy/template.yaml,
each request turned into the payload-format-2.0 event API Gateway sends (lower-case headers, the body base64 with
isBase64Encoded, rawPath, routeKey, pathParameters.proxy for `/{proxy+}`), the handler called in this process, and
its answer (statusCode, headers, body, isBase64Encoded) sent back. A path no route matches gets API Gateway's own
404 {"message": "Not Found"}; a handler that raises, its 500 {"message": "Internal Server Error"}."""

from __future__ import annotations

import base64
import json
import threading
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import urlsplit

import yaml

from tests.unit.test_lambda_template import TEMPLATE, _CloudFormationLoader


def template_routes(template: Path = TEMPLATE) -> list[str]:
    """The route keys of the template's HTTP API, e.g. "POST /invocations", "GET /{proxy+}"."""
    resources = yaml.load(template.read_text(), Loader=_CloudFormationLoader)["Resources"]
    return [r["Properties"]["RouteKey"] for r in resources.values() if r["Type"] == "AWS::ApiGatewayV2::Route"]


def match(routes: list[str], method: str, path: str) -> tuple[str, dict | None] | None:
    """API Gateway's choice: an exact route first, then the greedy `{proxy+}` one (which needs a non-empty rest)."""
    if f"{method} {path}" in routes:
        return f"{method} {path}", None
    for route in routes:
        route_method, route_path = route.split(" ", 1)
        if route_method == method and route_path.endswith("/{proxy+}"):
            prefix = route_path[: -len("{proxy+}")]
            if path.startswith(prefix) and len(path) > len(prefix):
                return route, {"proxy": path[len(prefix):]}
    return None


class HttpApiStandIn:
    """`handler(event, context)` behind `self.url`, with `self.calls`: (method, path, status) of each request."""

    def __init__(self, handler: Callable[[dict, object], dict], routes: list[str]):
        self.calls: list[tuple[str, str, int]] = []
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _serve(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                url = urlsplit(self.path)
                matched = match(routes, self.command, url.path)
                if matched is None:
                    return self._send(404, {"Content-Type": "application/json"}, b'{"message":"Not Found"}')
                route, path_parameters = matched
                headers: dict[str, str] = {}
                for key, value in self.headers.items():  # repeated headers are joined, as API Gateway does
                    key = key.lower()
                    headers[key] = f"{headers[key]},{value}" if key in headers else value
                request_id = str(uuid.uuid4())
                event = {
                    "version": "2.0", "routeKey": route, "rawPath": url.path, "rawQueryString": url.query,
                    "headers": headers,
                    "requestContext": {"http": {"method": self.command, "path": url.path, "protocol": "HTTP/1.1",
                                                "sourceIp": self.client_address[0],
                                                "userAgent": headers.get("user-agent", "")},
                                       "routeKey": route, "stage": "$default", "requestId": request_id},
                    "isBase64Encoded": bool(body),
                }
                if body:
                    event["body"] = base64.b64encode(body).decode("ascii")
                if path_parameters:
                    event["pathParameters"] = path_parameters
                try:
                    answer = handler(event, SimpleNamespace(aws_request_id=request_id))
                    data = answer.get("body") or ""
                    data = base64.b64decode(data) if answer.get("isBase64Encoded") else data.encode("utf-8")
                    status, answer_headers = answer["statusCode"], answer.get("headers") or {}
                except Exception:  # noqa: BLE001 - what API Gateway answers when the integration fails
                    status, answer_headers, data = 500, {"Content-Type": "application/json"}, \
                        json.dumps({"message": "Internal Server Error"}).encode()
                gateway.calls.append((self.command, url.path, status))
                self._send(status, {**answer_headers, "apigw-requestid": request_id}, data)

            do_GET = do_POST = do_OPTIONS = do_PUT = do_DELETE = do_PATCH = _serve

            def _send(self, status: int, headers: dict, data: bytes):
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(10)

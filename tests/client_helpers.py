"""Servers for the client tests: the SageMaker-runtime stand-in on a free 127.0.0.1 port, in this process, a
scripted container behind it, and boto3 sagemaker-runtime clients pointed at it through the standard environment
variable."""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import boto3

from segserve.client.standin import StandInConfig, StandInServer

FAKE_AWS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_EC2_METADATA_DISABLED": "true"}


@contextmanager
def running_standin(config: StandInConfig):
    server = StandInServer(("127.0.0.1", 0), config)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def point_boto3_at(monkeypatch, runtime_url: str, s3_url: str | None = None) -> None:
    """What a user does: AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME (and _S3) — no endpoint_url in any code."""
    for key in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(key, raising=False)
    for key, value in FAKE_AWS.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", runtime_url)
    if s3_url:
        monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3_url)


def plain_runtime():
    """boto3's own client, with its defaults: what a user's code would make."""
    return boto3.client("sagemaker-runtime")


class ScriptedContainer:
    """An HTTP server answering POST /invocations with `self.reply` = (status, body bytes, headers)."""

    def __init__(self):
        self.reply = (200, b'{"action": "ping", "status": "ready"}', {"Content-Type": "application/json"})
        self.seen: list[dict] = []
        self.delay_s = 0.0
        container = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                container.seen.append({"path": self.path, "headers": dict(self.headers), "body": body})
                status, data, headers = container.reply
                time.sleep(container.delay_s)
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()

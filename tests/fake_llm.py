"""A small OpenAI-compatible chat completions server on 127.0.0.1, for the prompt refiner's tests.

It speaks the real wire format (POST /v1/chat/completions, Bearer key, JSON chat completion), so the
official openai client is tested over real HTTP. Each user text can be given a scripted reply (phrases, raw
content, an HTTP status, a delay); every request is recorded. A wrong key gets a 401 whose message quotes
the key, as OpenAI's does in part, so that a leak of the key into an answer or a log would be seen.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

API_KEY = "sk-segserve-test-4f1c9a7e2b"  # what the fake server accepts (distinctive, to search logs for)


@dataclass(frozen=True)
class Reply:
    phrases: tuple[str, ...] | None = None  # answered as {"phrases": [...]}
    content: str | None = None  # raw message content instead (malformed output)
    status: int = 200  # an error status instead of a completion
    delay_s: float = 0.0  # wait before answering (a slow LLM)
    html: bool = False  # a 200 that is no chat completion at all (a proxy's page)

    def body(self, model: str) -> dict:
        if self.status != 200:
            return {"error": {"message": f"scripted error {self.status}", "type": "server_error", "code": None}}
        content = self.content if self.phrases is None else json.dumps({"phrases": list(self.phrases)})
        return {
            "id": "chatcmpl-fake", "object": "chat.completion", "created": int(time.time()), "model": model,
            "choices": [{"index": 0, "finish_reason": "stop", "logprobs": None,
                         "message": {"role": "assistant", "content": content, "refusal": None}}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
        }


@dataclass(frozen=True)
class Seen:
    path: str
    authorization: str | None
    body: dict

    @property
    def user_text(self) -> str:
        return next(m["content"] for m in self.body.get("messages", []) if m.get("role") == "user")


class FakeLlm:
    def __init__(self, api_key: str = API_KEY):
        self.api_key = api_key
        self.replies: dict[str, Reply] = {}  # user text → scripted reply; unscripted texts get a 500
        self.requests: list[Seen] = []
        self.refuse_keys = False
        self._server: ThreadingHTTPServer | None = None
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def script(self, text: str, reply: Reply) -> str:
        self.replies[text] = reply
        return text

    def seen(self, text: str) -> list[Seen]:
        return [request for request in self.requests if request.user_text == text]

    def start(self) -> "FakeLlm":
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), _handler(self))
        self._server.daemon_threads = True  # a request sleeping for a "slow" reply must not block stop()
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    @classmethod
    @contextlib.contextmanager
    def running(cls, api_key: str = API_KEY):
        llm = cls(api_key).start()
        try:
            yield llm
        finally:
            llm.stop()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @contextlib.contextmanager
    def stopped(self):
        """Nothing listens on the port meanwhile (connection refused); the same port answers again after."""
        self.stop()
        try:
            yield
        finally:
            self.start()

    @contextlib.contextmanager
    def refusing_keys(self):
        """Every key is refused meanwhile (a revoked key), with a 401 quoting it."""
        self.refuse_keys = True
        try:
            yield
        finally:
            self.refuse_keys = False


def _handler(llm: FakeLlm):
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            length = int(self.headers.get("Content-Length") or 0)
            try:
                body = json.loads(self.rfile.read(length) or b"{}")
            except ValueError:
                body = {}
            authorization = self.headers.get("Authorization")
            llm.requests.append(Seen(self.path, authorization, body))
            presented = (authorization or "").removeprefix("Bearer ")
            if self.path != "/v1/chat/completions":
                return self._send(404, {"error": {"message": "not found", "type": "invalid_request_error"}})
            if llm.refuse_keys or presented != llm.api_key:
                return self._send(401, {"error": {"message": f"Incorrect API key provided: {presented}.",
                                                  "type": "invalid_request_error", "code": "invalid_api_key"}})
            text = next((m.get("content") for m in body.get("messages", []) if m.get("role") == "user"), None)
            reply = llm.replies.get(text, Reply(status=500))
            time.sleep(reply.delay_s)
            if reply.html:
                return self._send(200, "<html><body>Sign in to the proxy</body></html>", "text/html")
            self._send(reply.status, reply.body(body.get("model", "")))

        def _send(self, status: int, payload: dict | str, content_type: str = "application/json") -> None:
            data = (payload if isinstance(payload, str) else json.dumps(payload)).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up waiting (the timeout tests)

        def log_message(self, *args):
            pass

    return Handler

"""The router's loopback client: one kept-alive connection, re-opened when the server closes it."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from segserve.routing.loopback import LoopbackClient


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    connections: set = set()

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).connections.add(self.client_address[1])
        if body.startswith(b"slow"):
            time.sleep(0.3)
        status = 400 if body == b"bad" else 200
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        if status >= 400:
            self.send_header("Connection", "close")  # as TorchServe does for every status >= 400
        self.end_headers()
        self.wfile.write(body)
        if status >= 400:
            self.close_connection = True

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    _Handler.connections = set()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_requests_share_one_connection(server):
    client = LoopbackClient(server, timeout=5)
    for i in range(5):
        response = client.request("POST", "/x", str(i).encode(), {"Content-Type": "application/json"})
        assert (response.status, response.body) == (200, str(i).encode())
    assert len(_Handler.connections) == 1


def test_the_connection_is_reopened_after_an_error_reply(server):
    client = LoopbackClient(server, timeout=5)
    assert client.request("POST", "/x", b"bad").status == 400
    assert client.request("POST", "/x", b"ok").body == b"ok"
    assert len(_Handler.connections) == 2


def test_a_refused_connection_raises():
    client = LoopbackClient("http://127.0.0.1:9", timeout=2)
    with pytest.raises(OSError):
        client.request("POST", "/x", b"{}")


class _Abandon(Exception):
    pass


def test_on_slow_is_called_once_when_the_answer_is_late_and_may_abandon_the_request(server):
    client = LoopbackClient(server, timeout=5, slow_s=0.05)
    calls = []
    fast = client.request("POST", "/x", b"ok", on_slow=lambda: calls.append("fast"))
    late = client.request("POST", "/x", b"slow-1", on_slow=lambda: calls.append("late"))
    assert (fast.body, late.body, calls) == (b"ok", b"slow-1", ["late"])  # a late answer is still read

    def give_up():
        raise _Abandon

    with pytest.raises(_Abandon):
        client.request("POST", "/x", b"slow-2", on_slow=give_up)
    # The abandoned connection is not reused: its late answer must not be taken for the next request's.
    assert client.request("POST", "/x", b"next").body == b"next"
    assert len(_Handler.connections) == 2

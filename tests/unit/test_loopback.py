"""The router's loopback client: one kept-alive connection, re-opened when the server closes it."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from segserve.routing.loopback import LoopbackClient


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    connections: set = set()

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).connections.add(self.client_address[1])
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

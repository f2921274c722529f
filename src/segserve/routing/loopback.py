"""HTTP over loopback from the router to the model workers, on one kept-alive connection per worker.

A plain `http.client` connection (a little faster here than requests.Session). TorchServe answers every
status >= 400 with `Connection: close`, so the connection is re-opened after such replies. A request
is sent again only when a REUSED connection turns out to be dead before any reply (the server closed
it while idle); never after a timeout, which may mean the model is still working on it.

`on_slow` is called once if no byte of the answer has come after `slow_s`: it may raise to abandon the
request (the connection is closed), e.g. when the model turns out to have no worker left to answer it.
"""

from __future__ import annotations

import http.client
import select
import socket
from collections.abc import Callable
from urllib.parse import urlsplit

from segserve.contract.wire import Reply


class LoopbackClient:
    def __init__(self, base_url: str, timeout: float, slow_s: float = 1.0):
        parts = urlsplit(base_url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.timeout = timeout
        self.slow_s = slow_s
        self._connection: http.client.HTTPConnection | None = None

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None,
                on_slow: Callable[[], None] | None = None) -> Reply:
        reused = self._connection is not None
        try:
            return self._send(method, path, body, headers or {}, on_slow)
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
            self.close()
            if not reused:
                raise
            return self._send(method, path, body, headers or {}, on_slow)
        except (OSError, http.client.HTTPException):
            self.close()
            raise

    def get_json(self, path: str) -> tuple[int, object]:
        response = self.request("GET", path)
        return response.status, response.json()

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def _send(self, method: str, path: str, body: bytes | None, headers: dict, on_slow) -> Reply:
        if self._connection is None:
            self._connection = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            self._connection.connect()
            self._connection.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._connection.request(method, path, body=body, headers=headers)
        if on_slow is not None and not select.select([self._connection.sock], [], [], self.slow_s)[0]:
            try:
                on_slow()
            except BaseException:
                self.close()  # abandon it: TorchServe drops the answer of a closed connection
                raise
        reply = self._connection.getresponse()
        data = reply.read()
        if reply.will_close:
            self.close()
        headers = {name.lower(): value for name, value in reply.getheaders()}  # names lower-cased
        return Reply(reply.status, data, reply.getheader("Content-Type", ""), headers)

"""One log line per request through the router, as a web server writes them:

    sam2 200 38 ms cache=hit id=5b0c…

The action is the one routing read from the decoded request (default custom attributes included). A body
refused before it was decoded (over the size limit, not JSON) is named from its first bytes, if they say.
`cache` comes from the model's X-Segserve-Cache header. serving/log4j2.xml puts these lines, and every warning
and error, on the console; the rest of TorchServe's log stays in its files.
"""

from __future__ import annotations

import logging
import re
import time

from segserve.contract.wire import CACHE_HEADER, Body, Reply, header

log = logging.getLogger("segserve.requests")

_NAME = re.compile(r"[A-Za-z0-9_-]{1,32}")  # what a label may be: a client's text never reaches the log raw
_ACTION = re.compile(rb'"action"\s*:\s*"(%s)"' % _NAME.pattern.encode())
_PEEK_BYTES = 4096  # clients put `action` first (docs/API.md); a body that does not is logged as "?"


def request_label(request: Body | None, body: bytes) -> str:
    """What the request asked for, for the log: its action, `batch`, or `?`; `request` None when the body was
    refused before it was decoded."""
    if request is None:
        found = _ACTION.search(body[:_PEEK_BYTES])
        return found.group(1).decode() if found else "?"
    if request.kind == "json_lines":
        return "batch"
    action = request.payload.get("action") if isinstance(request.payload, dict) else None
    return action if isinstance(action, str) and _NAME.fullmatch(action) else "?"


def log_request(label: str, reply: Reply, started: float, request_id: str | None) -> None:
    cache = header(reply.headers, CACHE_HEADER) or "-"
    ms = (time.perf_counter() - started) * 1000.0
    log.info("%s %d %.0f ms cache=%s id=%s", label, reply.status, ms, cache, request_id or "-")

"""One log line per request through the router, as a web server writes them:

    sam2 200 38 ms cache=hit id=5b0c…

The action is peeked at in the body's first bytes (the log must not parse a 6 MB image to name it); routing
itself always reads the whole request. `cache` comes from the model's X-Segserve-Cache header. serving/log4j2.xml
puts these lines, and every warning and error, on the console; the rest of TorchServe's log stays in its files.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Mapping

from segserve.contract.wire import CACHE_HEADER, CUSTOM_ATTRIBUTES, JSON_LINES, Reply, header, media_type

log = logging.getLogger("segserve.requests")

_ACTION = re.compile(rb'"action"\s*:\s*"([A-Za-z0-9_-]{1,32})"')
_ATTRIBUTE_ACTION = re.compile(r"(?:^|;)\s*action=([A-Za-z0-9_-]{1,32})")
_PEEK_BYTES = 4096  # clients put `action` first (docs/API.md); a body that does not is logged as "?"


def request_label(body: bytes, content_type: str | None, headers: Mapping[str, str]) -> str:
    """What the request asked for, for the log: its action, `batch`, or `?`."""
    if media_type(content_type) in JSON_LINES:
        return "batch"
    attributes = header(headers, CUSTOM_ATTRIBUTES)
    found = _ATTRIBUTE_ACTION.search(attributes) if attributes and body[:1] != b"{" else None
    if found is None:
        found = _ACTION.search(body[:_PEEK_BYTES])
        return found.group(1).decode() if found else "?"
    return found.group(1)


def log_request(label: str, reply: Reply, started: float, request_id: str | None) -> None:
    cache = header(reply.headers, CACHE_HEADER) or "-"
    ms = (time.perf_counter() - started) * 1000.0
    log.info("%s %d %.0f ms cache=%s id=%s", label, reply.status, ms, cache, request_id or "-")

"""SageMaker stateful sessions: sticky routing of a client's requests to the instance that holds its images.

A client opens a session with InvokeEndpoint `SessionId="NEW_SESSION"` (the request header
`X-Amzn-SageMaker-Session-Id: NEW_SESSION`) and/or the body `{"requestType": "NEW_SESSION"}`; the container
names the session in the answer header `X-Amzn-SageMaker-New-Session-Id: <id>; Expires=<UTC time>`.
SageMaker then sends every request that carries `X-Amzn-SageMaker-Session-Id: <id>` to this same instance,
where the image-id hash (affinity.py) sends each image to the sam2 replica holding its embedding. The body
`{"requestType": "CLOSE"}` with the session's id closes it (`X-Amzn-SageMaker-Closed-Session-Id: <id>`).

The header may also come on an ordinary request (e.g. the first click, with its image): it is answered as
usual and opens the session too. The router keeps no per-session state: a session only routes, the
embedding cache serves whoever sends an image or its id. So nothing is shared between router workers,
nothing grows with the number of sessions, and a session id is never a key to anything.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from segserve.contract.wire import header
from segserve.contract.errors import InvalidRequest

SESSION_HEADER = "X-Amzn-SageMaker-Session-Id"
NEW_SESSION_HEADER = "X-Amzn-SageMaker-New-Session-Id"
CLOSED_SESSION_HEADER = "X-Amzn-SageMaker-Closed-Session-Id"
NEW_SESSION = "NEW_SESSION"
CLOSE = "CLOSE"
REQUEST_TYPES = (NEW_SESSION, CLOSE)
# botocore's sagemaker-runtime model: SessionIdHeader, and NewSessionResponseHeader (max 256 in all).
_SESSION_ID = re.compile(r"[a-zA-Z0-9](-*[a-zA-Z0-9])*")
_MAX_HEADER = 256


@dataclass(frozen=True)
class SessionRequest:
    """What a request asks of sessions: open one, close one, or neither (`session_id` is the one it names)."""

    opens: bool = False
    closes: bool = False
    session_id: str | None = None
    control_only: bool = False  # the body is only {"requestType": ...}: the router answers it itself


def valid_session_id(value: str, field: str = SESSION_HEADER) -> str:
    if len(value) > _MAX_HEADER or not _SESSION_ID.fullmatch(value):
        raise InvalidRequest(
            f"{field} {value[:64]!r} is not a session id (letters, digits and hyphens, at most {_MAX_HEADER}) "
            f"nor {NEW_SESSION}", field=field,
        )
    return value


def session_request(headers: Mapping[str, str], payload: object) -> SessionRequest:
    """Read the session header and a `{"requestType": ...}` body (`payload`: the decoded JSON body, if any)."""
    named = header(headers, SESSION_HEADER)
    named = named.strip() if named is not None else None
    opens = named == NEW_SESSION
    session_id = None if named in (None, "", NEW_SESSION) else valid_session_id(named)
    if not (isinstance(payload, dict) and "requestType" in payload):
        return SessionRequest(opens=opens, session_id=session_id)
    request_type, extra = payload.get("requestType"), set(payload) - {"requestType", "sessionId"}
    if request_type not in REQUEST_TYPES or extra:
        raise InvalidRequest(
            f"a session request is {{\"requestType\": \"{NEW_SESSION}\"}} or {{\"requestType\": \"{CLOSE}\"}} "
            f"(with the session's id in {SESSION_HEADER} or \"sessionId\") and nothing else", field="requestType",
        )
    if request_type == NEW_SESSION:
        return SessionRequest(opens=True, control_only=True)
    body_id = payload.get("sessionId")
    if body_id is not None:
        if not isinstance(body_id, str) or (session_id is not None and body_id != session_id):
            raise InvalidRequest(f"sessionId must be a string and match {SESSION_HEADER}", field="sessionId")
        session_id = valid_session_id(body_id, "sessionId")
    if session_id is None:
        raise InvalidRequest(f"closing a session needs its id: {SESSION_HEADER} or \"sessionId\"", field="sessionId")
    return SessionRequest(closes=True, session_id=session_id, control_only=True)


@dataclass(frozen=True)
class Session:
    id: str
    expires: datetime  # UTC, whole seconds

    @classmethod
    def new(cls, ttl_s: int, now: datetime | None = None) -> "Session":
        now = now or datetime.now(timezone.utc)
        return cls(uuid.uuid4().hex, (now + timedelta(seconds=ttl_s)).replace(microsecond=0))

    @property
    def expires_text(self) -> str:
        return self.expires.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")

    @property
    def header(self) -> str:
        """The X-Amzn-SageMaker-New-Session-Id value, exactly botocore's format: '<id>; Expires=<UTC>Z'."""
        return f"{self.id}; Expires={self.expires_text}"

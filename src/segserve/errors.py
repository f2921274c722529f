"""Errors that carry an HTTP status and a message that is safe to show a client.

Every layer raises these; one boundary (the service workflow) turns them into
`{"error": {"code", "message", "field"}}` responses. Anything that is not a
`ServiceError` is a bug and becomes a 500 with the details kept in the log.
"""

from __future__ import annotations


class ServiceError(Exception):
    """Base class: `status` is the HTTP status, `code` a stable machine-readable name."""

    status = 500
    code = "internal_error"

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field

    def to_dict(self) -> dict:
        error = {"code": self.code, "message": self.message}
        if self.field is not None:
            error["field"] = self.field
        return {"error": error}


class InvalidRequest(ServiceError):
    status = 400
    code = "invalid_request"


class InvalidImage(InvalidRequest):
    code = "invalid_image"


class ImageFetchFailed(InvalidRequest):
    """image_url's origin was unreachable, too slow or failed: still the client's to fix (they chose the URL)."""

    code = "image_fetch_failed"


class NotFound(ServiceError):
    status = 404
    code = "not_found"


class PayloadTooLarge(ServiceError):
    status = 413
    code = "payload_too_large"


class UnsupportedMediaType(ServiceError):
    status = 415
    code = "unsupported_media_type"


class NotReady(ServiceError):
    status = 503
    code = "not_ready"


class WeightsError(ServiceError):
    """A weight file is missing, corrupt or of the wrong format (an operator's problem, not a client's)."""

    code = "weights_error"


class OutOfMemory(ServiceError):
    status = 507
    code = "out_of_memory"


class TimedOut(ServiceError):
    status = 504
    code = "timed_out"

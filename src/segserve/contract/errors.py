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

    @property
    def headers(self) -> dict[str, str]:
        """Response headers this error asks for (none by default)."""
        return {}


class InvalidRequest(ServiceError):
    status = 400
    code = "invalid_request"


class InvalidImage(InvalidRequest):
    code = "invalid_image"


class ImageFetchFailed(InvalidRequest):
    """image_url's origin was unreachable, too slow or failed: still the client's to fix (they chose the URL)."""

    code = "image_fetch_failed"


class NotDeployed(InvalidRequest):
    """An action this endpoint does not serve, e.g. sam3 on an endpoint deployed without SAM 3's weights."""

    code = "not_deployed"


class NotFound(ServiceError):
    status = 404
    code = "not_found"


class ImageNotCached(NotFound):
    """An `image_id` this model does not hold: never sent here, evicted, or the cache is off."""

    def __init__(self, image_id: str):
        super().__init__(
            f"image_id {image_id!r} is not cached on this endpoint (unknown, evicted or expired): "
            "send the image again (image, image_url or the raw body); its answer gives the id to use next",
            field="image_id",
        )


class PayloadTooLarge(ServiceError):
    status = 413
    code = "payload_too_large"


class UnsupportedMediaType(ServiceError):
    status = 415
    code = "unsupported_media_type"


class NotReady(ServiceError):
    """503: the model is not registered or has no loaded worker (starting, restarting, or given up on).

    The base of every 503: the request may well be fine, but cannot be served now; retry after
    `retry_after_s`. The wait goes out twice: as the `Retry-After` header, and as `retry_after_s` in the
    body, because SageMaker's InvokeEndpoint hands a client the status and body of an error, not its headers.
    """

    status = 503
    code = "not_ready"

    def __init__(self, message: str, retry_after_s: int, field: str | None = None):
        super().__init__(message, field)
        self.retry_after_s = max(1, int(retry_after_s))

    def to_dict(self) -> dict:
        body = super().to_dict()
        body["error"]["retry_after_s"] = self.retry_after_s
        return body

    @property
    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after_s)}


class ModelRestarting(NotReady):
    """The model's worker process stopped while serving this request; TorchServe is starting a new one."""

    code = "model_restarting"


class Overloaded(NotReady):
    """The model's queue is full: more requests arrive than its workers can serve."""

    code = "overloaded"


class WeightsError(ServiceError):
    """A weight file is missing, corrupt or of the wrong format (an operator's problem, not a client's)."""

    code = "weights_error"


class OutOfMemory(ServiceError):
    """Only a real out-of-memory (the model's own MemoryError / CUDA OOM), never a crashed worker."""

    status = 507
    code = "out_of_memory"


class TimedOut(ServiceError):
    status = 504
    code = "timed_out"

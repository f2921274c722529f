"""What can go wrong calling an endpoint, as two exceptions a caller can act on.

`EndpointError`: someone answered with an error. Either the container did (SageMaker's ModelError: its
status and its `{"error": {...}}` body are kept as the container sent them) or SageMaker itself did
(endpoint not found, throttled, not ready). `EndpointUnreachable`: nobody answered (no network, wrong
endpoint URL, a timeout).
"""

from __future__ import annotations

import json

from botocore.exceptions import ClientError


class EndpointError(Exception):
    """An error answer. `status` is the container's HTTP status when `from_model`, else SageMaker's."""

    def __init__(self, status: int, code: str, message: str, *, body: str = "", from_model: bool,
                 field: str | None = None, request_id: str | None = None, retry_after_s: int | None = None):
        self.status = status
        self.retry_after_s = retry_after_s  # a 503's advice (SageMaker drops the Retry-After header; the body has it)
        self.code = code
        self.message = message
        self.body = body  # the error body as received: the container's JSON for a model error
        self.from_model = from_model
        self.field = field
        self.request_id = request_id
        super().__init__(str(self))

    def __str__(self) -> str:
        where = f" ({self.field})" if self.field else ""
        request = f" [request {self.request_id}]" if self.request_id else ""
        return f"{self.status} {self.code}{where}: {self.message}{request}"

    @classmethod
    def from_client_error(cls, error: ClientError) -> EndpointError:
        response = error.response
        aws = response.get("Error", {})
        if aws.get("Code") == "ModelError":
            return cls.from_model_answer(int(response.get("OriginalStatusCode") or 0),
                                         response.get("OriginalMessage") or "", aws.get("Message", ""))
        status = int(response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        return cls(status, aws.get("Code") or "unknown", aws.get("Message") or str(error), from_model=False,
                   request_id=response.get("ResponseMetadata", {}).get("RequestId"))

    @classmethod
    def from_model_answer(cls, status: int, body: str, fallback_message: str = "") -> EndpointError:
        """The container's error answer (our `{"error": {"code", "message", "field", "request_id"}}` shape,
        or whatever else it sent, e.g. TorchServe's own errors)."""
        try:
            error = json.loads(body)["error"]
            code, message = str(error["code"]), str(error["message"])
        except (ValueError, KeyError, TypeError):
            return cls(status, "model_error", body.strip() or fallback_message or "the model answered an error",
                       body=body, from_model=True)
        retry_after = error.get("retry_after_s")
        return cls(status, code, message, body=body, from_model=True, field=error.get("field"),
                   request_id=error.get("request_id"), retry_after_s=retry_after if type(retry_after) is int else None)


class EndpointUnreachable(Exception):
    """No answer at all: the SageMaker runtime (or the stand-in) could not be reached, or timed out."""

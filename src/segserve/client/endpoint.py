"""The Python client of a segserve endpoint, over boto3's sagemaker-runtime (InvokeEndpoint, InvokeEndpointAsync).

    client = SegmentationClient("segserve")
    answer = client.sam2("photo.jpg", x=200, y=150, session_id=NEW_SESSION)
    again = client.sam2(image_id=answer.body["image"]["id"], x=220, y=160, session_id=answer.session_id)

The same code reaches AWS, or anything that speaks the sagemaker-runtime API: boto3 reads
`AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME` (the local stand-in, `segserve-runtime-standin`, for `make serve`).
Errors become `EndpointError` (status and body of the container, or SageMaker's) or `EndpointUnreachable`.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, ConnectionError, ParamValidationError, ReadTimeoutError

from segserve.client.errors import EndpointError, EndpointUnreachable
from segserve.client.payloads import ImageSource, langsam_request, ping_request, sam2_request, sam3_request

JSON = "application/json"
NEW_SESSION = "NEW_SESSION"  # SessionId that asks the endpoint to open a stateful session
# SageMaker allows 60 s per real-time invocation; a little more so its own timeout answer arrives first.
READ_TIMEOUT_S = 70.0
_NEW_SESSION_HEADER = re.compile(r"^(?P<id>[A-Za-z0-9](-*[A-Za-z0-9])*);\sExpires=(?P<expires>\S+)$")


@dataclass(frozen=True)
class Answer:
    """A 2xx answer. `session_id`/`session_expires`: the session the endpoint opened (if it did)."""

    body: Any  # the decoded JSON (bytes when the answer is not JSON)
    content_type: str
    data: bytes = b""  # the body as received
    session_id: str | None = None
    session_expires: str | None = None  # ISO 8601 UTC, as the endpoint sent it
    closed_session_id: str | None = None
    variant: str | None = None  # the production variant that answered


@dataclass(frozen=True)
class AsyncInvocation:
    inference_id: str
    output_location: str
    failure_location: str | None


def runtime_client(region: str | None = None, read_timeout: float = READ_TIMEOUT_S, session=None):
    """boto3's sagemaker-runtime client (from `session`, a boto3.Session, if given) with timeouts sized for
    segmentation, and no automatic retries: botocore would resend a POST after a read timeout, doubling the
    work of an endpoint that is already slow (the caller decides, e.g. on a 503 with Retry-After)."""
    config = Config(read_timeout=read_timeout, connect_timeout=5, retries={"mode": "standard", "total_max_attempts": 1})
    return (session or boto3).client("sagemaker-runtime", region_name=region, config=config)


class SegmentationClient:
    def __init__(self, endpoint_name: str, *, runtime=None, s3=None, region: str | None = None):
        self.endpoint_name = endpoint_name
        self.runtime = runtime or runtime_client(region)
        self._s3 = s3
        self._region = region

    # --- the actions -----------------------------------------------------------------------------------

    def langsam(self, image: ImageSource | None = None, *, text_prompt: str, image_id: str | None = None,
                session_id: str | None = None, **options) -> Answer:
        """Text prompt → one mask per detected object (options: box_threshold, max_detections, mask_format…)."""
        return self.invoke(langsam_request(text_prompt, image, image_id, **options), session_id=session_id)

    def sam2(self, image: ImageSource | None = None, *, image_id: str | None = None, session_id: str | None = None,
             **prompts) -> Answer:
        """Points (x/y, or points with labels), a box and/or mask_input → masks (options: multimask, mask_format…)."""
        return self.invoke(sam2_request(image, image_id, **prompts), session_id=session_id)

    def sam3(self, image: ImageSource | None = None, *, image_id: str | None = None, session_id: str | None = None,
             **prompts) -> Answer:
        """SAM 3: text_prompt and/or exemplar_boxes → every instance, or sam2's click fields → one object."""
        return self.invoke(sam3_request(image, image_id, **prompts), session_id=session_id)

    def ping(self) -> Answer:
        """Readiness of every model behind the endpoint."""
        return self.invoke(ping_request())

    def open_session(self) -> Answer:
        """A stateful session (SageMaker routes its requests to one instance): `answer.session_id`.
        Any action with `session_id=NEW_SESSION` opens one too."""
        return self.invoke({"requestType": NEW_SESSION}, session_id=NEW_SESSION)

    def close_session(self, session_id: str) -> Answer:
        """Close a session: `answer.closed_session_id` confirms it."""
        return self.invoke({"requestType": "CLOSE"}, session_id=session_id)

    # --- the calls -------------------------------------------------------------------------------------

    def invoke(self, body: dict | bytes, *, content_type: str = JSON, accept: str = JSON,
               custom_attributes: str | None = None, session_id: str | None = None) -> Answer:
        """InvokeEndpoint with a JSON object (sent as JSON) or raw bytes of `content_type` (e.g. an image,
        with its fields in `custom_attributes`)."""
        kwargs = {"EndpointName": self.endpoint_name, "ContentType": content_type, "Accept": accept,
                  "Body": json.dumps(body).encode() if isinstance(body, dict) else body}
        if custom_attributes:
            kwargs["CustomAttributes"] = custom_attributes
        if session_id:
            kwargs["SessionId"] = session_id
        return answer_from(call(self.runtime.invoke_endpoint, **kwargs))

    def invoke_async(self, body: dict | bytes, input_location: str, *, content_type: str = JSON,
                     custom_attributes: str | None = None, inference_id: str | None = None) -> AsyncInvocation:
        """Upload the request to `input_location` (s3://bucket/key) and InvokeEndpointAsync on it."""
        bucket, key = split_s3_url(input_location)
        data = json.dumps(body).encode() if isinstance(body, dict) else body
        call(self.s3.put_object, Bucket=bucket, Key=key, Body=data, ContentType=content_type)
        kwargs = {"EndpointName": self.endpoint_name, "InputLocation": input_location, "ContentType": content_type,
                  "Accept": JSON, "InferenceId": inference_id or str(uuid.uuid4())}
        if custom_attributes:
            kwargs["CustomAttributes"] = custom_attributes
        response = call(self.runtime.invoke_endpoint_async, **kwargs)
        return AsyncInvocation(response["InferenceId"], response["OutputLocation"], response.get("FailureLocation"))

    def wait_async(self, invocation: AsyncInvocation, timeout_s: float = 900.0, poll_s: float = 2.0) -> Answer:
        """Poll S3 until the answer (→ Answer) or the failure (→ EndpointError) of an async invocation appears."""
        deadline = time.monotonic() + timeout_s
        while True:
            answer = self._read_s3(invocation.output_location)
            if answer is not None:
                return Answer(body=json.loads(answer), content_type=JSON, data=answer)
            failure = self._read_s3(invocation.failure_location) if invocation.failure_location else None
            if failure is not None:
                raise EndpointError.from_model_answer(0, failure.decode(errors="replace"))
            if time.monotonic() > deadline:
                raise EndpointUnreachable(f"no answer at {invocation.output_location} within {timeout_s:g} s")
            time.sleep(poll_s)

    @property
    def s3(self):
        if self._s3 is None:
            self._s3 = boto3.client("s3", region_name=self._region)
        return self._s3

    def _read_s3(self, url: str) -> bytes | None:
        bucket, key = split_s3_url(url)
        try:
            return call(self.s3.get_object, Bucket=bucket, Key=key)["Body"].read()
        except EndpointError as error:
            if error.status == 404 or error.code in ("NoSuchKey", "404"):
                return None
            raise


def answer_from(response: dict) -> Answer:
    """InvokeEndpoint's reply (boto3's dict: Body, ContentType, NewSessionId, …) as an Answer."""
    data = response["Body"].read()
    answered_type = response.get("ContentType") or ""
    session = _NEW_SESSION_HEADER.match(response.get("NewSessionId") or "")
    return Answer(
        body=json.loads(data) if answered_type.startswith(JSON) else data,
        content_type=answered_type,
        data=data,
        session_id=session["id"] if session else None,
        session_expires=session["expires"] if session else None,
        closed_session_id=response.get("ClosedSessionId"),
        variant=response.get("InvokedProductionVariant"),
    )


def call(method, **kwargs):
    """One AWS call, its failures as this client's errors (EndpointError, EndpointUnreachable, ValueError)."""
    try:
        return method(**kwargs)
    except ClientError as error:
        raise EndpointError.from_client_error(error) from None
    except ParamValidationError as error:  # the caller's values, refused before sending
        raise ValueError(str(error)) from None
    except (ConnectionError, ReadTimeoutError) as error:
        raise EndpointUnreachable(str(error)) from None
    except BotoCoreError as error:  # e.g. no credentials, no region: the caller's set-up
        raise EndpointUnreachable(f"{type(error).__name__}: {error}") from None


def split_s3_url(url: str) -> tuple[str, str]:
    if not url.startswith("s3://") or "/" not in url[5:]:
        raise ValueError(f"{url}: not an s3://bucket/key URL")
    bucket, _, key = url[5:].partition("/")
    return bucket, key

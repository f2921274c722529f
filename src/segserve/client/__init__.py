"""The Python client of a segserve endpoint over boto3's sagemaker-runtime: the `segserve-deploy invoke`
command, the web UI's Lambda and the tests use it. `segserve.client.standin` is a local SageMaker-runtime
stand-in in front of `make serve`; `segserve.client.mask_files` writes masks to PNG files."""

from segserve.client.endpoint import NEW_SESSION, Answer, AsyncInvocation, SegmentationClient, runtime_client
from segserve.client.errors import EndpointError, EndpointUnreachable
from segserve.client.payloads import custom_attributes, langsam_request, ping_request, sam2_request, sam3_request

__all__ = [
    "NEW_SESSION", "Answer", "AsyncInvocation", "EndpointError", "EndpointUnreachable", "SegmentationClient",
    "custom_attributes", "langsam_request", "ping_request", "runtime_client", "sam2_request", "sam3_request",
]

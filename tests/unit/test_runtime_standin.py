"""The SageMaker-runtime stand-in and the client, over real HTTP, in front of a scripted container.

boto3 (plain, and through SegmentationClient) reaches the stand-in through AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME
only; the container here answers whatever each test scripts and records what it was sent. The live-TorchServe
version of these paths is tests/integration/test_serving_client.py.
"""

from __future__ import annotations

import json
import time

import pytest
from botocore.exceptions import ClientError

from segserve.client import NEW_SESSION, EndpointError, EndpointUnreachable, SegmentationClient
from segserve.client.standin import StandInConfig
from tests.client_helpers import plain_runtime, point_boto3_at, running_standin
from tests.processes import free_port

SESSION_REPLY = "s-1a2b; Expires=2026-12-01T23:00:00Z"


@pytest.fixture
def runtime(monkeypatch, standin, container):
    point_boto3_at(monkeypatch, standin.url)
    container.seen.clear()
    return plain_runtime()


def test_a_2xx_comes_back_with_its_body_type_and_headers(runtime, container):
    container.reply = (200, b'{"masks": []}', {"Content-Type": "application/json",
                                                "X-Amzn-SageMaker-New-Session-Id": SESSION_REPLY,
                                                "X-Amzn-SageMaker-Custom-Attributes": "cache=miss"})
    response = runtime.invoke_endpoint(EndpointName="segserve", Body=b'{"action": "sam2"}',
                                       ContentType="application/json", Accept="application/json",
                                       CustomAttributes="action=sam2;x=1", SessionId=NEW_SESSION)
    assert response["Body"].read() == b'{"masks": []}'
    assert response["ContentType"] == "application/json"
    assert response["NewSessionId"] == SESSION_REPLY  # botocore's pattern for it accepted the value
    assert response["CustomAttributes"] == "cache=miss"
    assert response["InvokedProductionVariant"] == "AllTraffic"
    (seen,) = container.seen
    assert seen["path"] == "/invocations" and seen["body"] == b'{"action": "sam2"}'
    headers = {k.lower(): v for k, v in seen["headers"].items()}
    assert headers["content-type"] == "application/json" and headers["accept"] == "application/json"
    assert headers["x-amzn-sagemaker-custom-attributes"] == "action=sam2;x=1"
    assert headers["x-amzn-sagemaker-session-id"] == NEW_SESSION
    assert "authorization" not in headers  # SageMaker never hands the caller's signature to the container


def test_a_closed_session_is_passed_back(runtime, container):
    container.reply = (200, b"{}", {"Content-Type": "application/json", "X-Amzn-SageMaker-Closed-Session-Id": "s-1"})
    response = runtime.invoke_endpoint(EndpointName="segserve", Body=b"{}", SessionId="s-1")
    assert response["ClosedSessionId"] == "s-1"
    assert container.seen[0]["headers"]["X-Amzn-SageMaker-Session-Id"] == "s-1"


@pytest.mark.parametrize("status, side", [(400, "client"), (404, "client"), (503, "server"), (507, "server")])
def test_a_container_error_is_sagemakers_model_error_with_the_original_status_and_body(runtime, container, status,
                                                                                       side):
    body = json.dumps({"error": {"code": "some_code", "message": "why", "request_id": "r-1"}})
    container.reply = (status, body.encode(), {"Content-Type": "application/json"})
    with pytest.raises(runtime.exceptions.ModelError) as raised:
        runtime.invoke_endpoint(EndpointName="segserve", Body=b"{}", ContentType="application/json")
    response = raised.value.response
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 424
    assert response["Error"]["Code"] == "ModelError"
    assert response["OriginalStatusCode"] == status
    assert response["OriginalMessage"] == body
    assert response["Error"]["Message"].startswith(f"Received {side} error ({status}) from primary with message")
    assert response["LogStreamArn"].endswith("/aws/sagemaker/Endpoints/segserve")


def test_the_client_raises_the_containers_status_code_and_message(runtime, container):
    body = {"error": {"code": "invalid_request", "message": "x: too big", "field": "x", "request_id": "r-9"}}
    container.reply = (400, json.dumps(body).encode(), {"Content-Type": "application/json"})
    client = SegmentationClient("segserve", runtime=runtime)
    with pytest.raises(EndpointError) as raised:
        client.sam2(b"\x89PNG fake", x=1, y=2)
    error = raised.value
    assert (error.status, error.code, error.field, error.request_id) == (400, "invalid_request", "x", "r-9")
    assert error.from_model and json.loads(error.body) == body
    assert str(error) == "400 invalid_request (x): x: too big [request r-9]"


def test_a_503_keeps_its_retry_advice(runtime, container):
    body = {"error": {"code": "overloaded", "message": "queue full", "retry_after_s": 2}}
    container.reply = (503, json.dumps(body).encode(), {"Content-Type": "application/json", "Retry-After": "2"})
    with pytest.raises(EndpointError) as raised:
        SegmentationClient("segserve", runtime=runtime).ping()
    assert (raised.value.status, raised.value.code, raised.value.retry_after_s) == (503, "overloaded", 2)


def test_a_non_json_container_error_keeps_its_text(runtime, container):
    container.reply = (413, b"", {})  # TorchServe's empty 413 for a body over max_request_size
    with pytest.raises(EndpointError) as raised:
        SegmentationClient("segserve", runtime=runtime).ping()
    assert raised.value.status == 413 and raised.value.code == "model_error"
    assert "Received client error (413)" in raised.value.message


def test_an_unknown_endpoint_is_sagemakers_validation_error(runtime):
    with pytest.raises(ClientError) as raised:
        runtime.invoke_endpoint(EndpointName="nope", Body=b"{}")
    assert raised.value.response["Error"]["Code"] == "ValidationError"
    assert raised.value.response["Error"]["Message"] == "Endpoint nope of account 000000000000 not found."
    with pytest.raises(EndpointError) as client_raised:
        SegmentationClient("nope", runtime=runtime).ping()
    assert (client_raised.value.status, client_raised.value.code) == (400, "ValidationError")
    assert not client_raised.value.from_model


def test_every_served_endpoint_name_answers(runtime, container):
    container.reply = (200, b'{"status": "ready"}', {"Content-Type": "application/json"})
    assert SegmentationClient("other-endpoint", runtime=runtime).ping().body == {"status": "ready"}


def test_a_container_that_does_not_answer_is_a_model_error_with_status_zero(monkeypatch):
    with running_standin(StandInConfig(f"http://127.0.0.1:{free_port()}")) as server:
        point_boto3_at(monkeypatch, server.url)
        runtime = plain_runtime()
        with pytest.raises(runtime.exceptions.ModelError) as raised:
            runtime.invoke_endpoint(EndpointName="segserve", Body=b"{}")
        assert raised.value.response.get("OriginalStatusCode") == 0
        assert "did not answer" in raised.value.response["OriginalMessage"]
        with pytest.raises(EndpointError) as client_raised:
            SegmentationClient("segserve", runtime=runtime).ping()
        assert client_raised.value.status == 0 and client_raised.value.from_model


def test_no_stand_in_at_all_is_unreachable(monkeypatch):
    point_boto3_at(monkeypatch, f"http://127.0.0.1:{free_port()}")
    with pytest.raises(EndpointUnreachable, match="Could not connect"):
        SegmentationClient("segserve").ping()


def test_async_is_refused_when_the_stand_in_has_no_output_location(runtime):
    with pytest.raises(ClientError) as raised:
        runtime.invoke_endpoint_async(EndpointName="segserve", InputLocation="s3://b/k")
    assert raised.value.response["Error"]["Code"] == "ValidationError"
    assert "--async-output" in raised.value.response["Error"]["Message"]


def test_the_console_script_serves_until_stopped(monkeypatch, container):
    """`segserve-runtime-standin` as a developer starts it: it prints the variable to export, then answers."""
    import shutil
    import subprocess

    port = free_port()
    process = subprocess.Popen(
        [shutil.which("segserve-runtime-standin") or "segserve-runtime-standin", "--port", str(port),
         "--container-url", container.url, "--endpoint-name", "mine"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        banner = process.stdout.readline() + process.stdout.readline()
        assert f"export AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME=http://127.0.0.1:{port}" in banner, banner
        point_boto3_at(monkeypatch, f"http://127.0.0.1:{port}")
        container.reply = (200, b'{"status": "ready"}', {"Content-Type": "application/json"})
        assert SegmentationClient("mine").ping().body == {"status": "ready"}
    finally:
        process.terminate()
        code = process.wait(10)
    assert code == 0  # SIGTERM stops it cleanly
    assert "POST /endpoints/mine/invocations -> 200" in process.stderr.read()


def test_a_read_timeout_is_reported_once_and_the_request_never_resent(monkeypatch, standin, container):
    """botocore would resend the POST after a read timeout, doubling the work of a slow endpoint."""
    from segserve.client import runtime_client

    point_boto3_at(monkeypatch, standin.url)
    container.seen.clear()
    container.delay_s = 1.5
    try:
        with pytest.raises(EndpointUnreachable, match="Read timeout"):
            SegmentationClient("segserve", runtime=runtime_client(read_timeout=0.5)).ping()
        time.sleep(2.0)  # long enough for a resent request to have reached the container
    finally:
        container.delay_s = 0.0
    assert len(container.seen) == 1

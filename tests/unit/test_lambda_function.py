"""The UI's Lambda, called in-process as Lambda calls it (API Gateway proxy events), over real HTTP to the
SageMaker-runtime stand-in and a scripted container. The live-TorchServe version is in
tests/integration/test_serving_client.py."""

from __future__ import annotations

import base64
import json
from types import SimpleNamespace

import pytest

from deploy import lambda_function
from segserve.client.standin import StandInConfig
from tests.client_helpers import point_boto3_at, running_standin
from tests.processes import free_port

ORIGIN = "https://ui.example.com"
CONTEXT = SimpleNamespace(aws_request_id="lambda-req-1")


def http_api_event(body: str | bytes = "", method: str = "POST", headers: dict | None = None,
                   base64_body: bool = False) -> dict:
    """API Gateway HTTP API (payload format 2.0), as the template's integration sends it."""
    if base64_body:
        body = base64.b64encode(body if isinstance(body, bytes) else body.encode()).decode()
    return {"version": "2.0", "routeKey": f"{method} /invocations", "rawPath": "/invocations",
            "headers": {"origin": ORIGIN, "content-type": "application/json", **(headers or {})},
            "requestContext": {"http": {"method": method, "path": "/invocations"}},
            "body": body, "isBase64Encoded": base64_body}


def rest_api_event(body: str) -> dict:
    """API Gateway REST API (payload format 1.0): the handler serves both."""
    return {"httpMethod": "POST", "path": "/invocations", "headers": {"Origin": ORIGIN}, "body": body,
            "isBase64Encoded": False}


@pytest.fixture
def handler(monkeypatch, standin, container):
    point_boto3_at(monkeypatch, standin.url)
    monkeypatch.setenv("ENDPOINT_NAME", "segserve")
    monkeypatch.setenv("ALLOWED_ORIGINS", ORIGIN)
    monkeypatch.setenv("MAX_BODY_BYTES", "1000")
    container.seen.clear()
    container.reply = (200, b'{"action":"ping","status":"ready"}', {"Content-Type": "application/json"})
    return lambda event: lambda_function.lambda_handler(event, CONTEXT)


def test_a_request_is_forwarded_unchanged_and_answered_with_the_models_body(handler, container):
    reply = handler(http_api_event('{"action": "ping"}'))
    assert reply["statusCode"] == 200
    assert reply["body"] == '{"action":"ping","status":"ready"}'  # byte for byte, not re-serialised
    assert reply["headers"]["Content-Type"] == "application/json"
    assert reply["headers"]["Access-Control-Allow-Origin"] == ORIGIN
    assert container.seen[0]["body"] == b'{"action": "ping"}'


def test_the_rest_api_event_format_works_too(handler):
    assert handler(rest_api_event('{"action": "ping"}'))["statusCode"] == 200


def test_a_base64_body_is_decoded(handler, container):
    assert handler(http_api_event('{"action": "ping"}', base64_body=True))["statusCode"] == 200
    assert container.seen[0]["body"] == b'{"action": "ping"}'


def test_sessions_pass_through_both_ways(handler, container):
    container.reply = (200, b"{}", {"Content-Type": "application/json",
                                    "X-Amzn-SageMaker-New-Session-Id": "abc-1; Expires=2026-12-01T23:00:00Z"})
    reply = handler(http_api_event('{"action": "ping"}', headers={"x-amzn-sagemaker-session-id": "NEW_SESSION"}))
    assert reply["headers"]["X-Amzn-SageMaker-New-Session-Id"] == "abc-1; Expires=2026-12-01T23:00:00Z"
    assert "X-Amzn-SageMaker-New-Session-Id" in reply["headers"]["Access-Control-Expose-Headers"]
    assert container.seen[0]["headers"]["X-Amzn-SageMaker-Session-Id"] == "NEW_SESSION"


@pytest.mark.parametrize("status", [400, 404, 413, 503, 507])
def test_the_models_error_status_and_body_pass_through(handler, container, status):
    body = json.dumps({"error": {"code": "c", "message": "m", "request_id": "r"}}).encode()
    container.reply = (status, body, {"Content-Type": "application/json"})
    reply = handler(http_api_event('{"action": "sam2"}'))
    assert reply["statusCode"] == status and reply["body"].encode() == body
    assert reply["headers"]["Access-Control-Allow-Origin"] == ORIGIN  # the browser may read the error


def test_a_503s_retry_advice_becomes_the_browsers_retry_after_header(handler, container):
    body = {"error": {"code": "model_restarting", "message": "restarting", "retry_after_s": 3}}
    container.reply = (503, json.dumps(body).encode(), {"Content-Type": "application/json", "Retry-After": "3"})
    reply = handler(http_api_event('{"action": "sam2"}'))
    assert reply["statusCode"] == 503 and reply["headers"]["Retry-After"] == "3"
    assert json.loads(reply["body"]) == body


def test_a_body_over_the_limit_is_413_and_never_sent(handler, container):
    reply = handler(http_api_event(json.dumps({"action": "sam2", "image": "A" * 2000})))
    assert reply["statusCode"] == 413
    error = json.loads(reply["body"])["error"]
    assert error["code"] == "payload_too_large" and "1,000" in error["message"]
    assert error["request_id"] == "lambda-req-1"
    assert container.seen == []


@pytest.mark.parametrize("body", ["not json", "[1, 2]", ""])
def test_a_body_that_is_not_a_json_object_is_400_and_never_sent(handler, container, body):
    reply = handler(http_api_event(body))
    assert reply["statusCode"] == 400 and json.loads(reply["body"])["error"]["code"] == "invalid_request"
    assert container.seen == []


def test_other_methods_are_405(handler):
    reply = handler(http_api_event(method="GET"))
    assert reply["statusCode"] == 405 and json.loads(reply["body"])["error"]["code"] == "method_not_allowed"


def test_preflight_allows_the_configured_origin_only(handler, container):
    reply = handler(http_api_event(method="OPTIONS"))
    assert reply["statusCode"] == 204 and reply["body"] == ""
    assert reply["headers"]["Access-Control-Allow-Origin"] == ORIGIN
    assert "x-amzn-sagemaker-session-id" in reply["headers"]["Access-Control-Allow-Headers"]
    other = handler(http_api_event(method="OPTIONS", headers={"origin": "https://evil.example"}))
    assert "Access-Control-Allow-Origin" not in other["headers"]
    assert container.seen == []


def test_an_unknown_endpoint_is_502_without_sagemakers_message(handler, monkeypatch):
    monkeypatch.setenv("ENDPOINT_NAME", "not-deployed")
    reply = handler(http_api_event('{"action": "ping"}'))
    assert reply["statusCode"] == 502
    assert json.loads(reply["body"])["error"]["code"] == "endpoint_unavailable"
    assert "account" not in reply["body"]  # SageMaker's message names the AWS account: logged, not answered


def test_a_missing_endpoint_name_is_a_clear_500_not_a_traceback(handler, monkeypatch, container):
    monkeypatch.delenv("ENDPOINT_NAME")
    reply = handler(http_api_event('{"action": "ping"}'))
    assert reply["statusCode"] == 500 and json.loads(reply["body"])["error"]["code"] == "misconfigured"
    assert container.seen == []


def test_an_unreachable_runtime_is_a_clear_502(handler, monkeypatch):
    point_boto3_at(monkeypatch, f"http://127.0.0.1:{free_port()}")
    reply = handler(http_api_event('{"action": "ping"}'))
    assert reply["statusCode"] == 502
    assert json.loads(reply["body"])["error"] == {
        "code": "endpoint_unreachable", "message": "the segmentation endpoint could not be reached",
        "request_id": "lambda-req-1"}


def test_a_container_that_does_not_answer_is_502(monkeypatch):
    with running_standin(StandInConfig(f"http://127.0.0.1:{free_port()}")) as server:
        point_boto3_at(monkeypatch, server.url)
        monkeypatch.setenv("ENDPOINT_NAME", "segserve")
        reply = lambda_function.lambda_handler(http_api_event('{"action": "ping"}'), CONTEXT)
    assert reply["statusCode"] == 502
    assert "did not answer" in json.loads(reply["body"])["error"]["message"]


def test_the_lambda_zip_imports_with_nothing_but_boto3(tmp_path):
    """As Lambda's runtime loads it: the zip first on the path, boto3 beside it, no segserve install, no numpy."""
    import subprocess
    import sys
    import sysconfig

    from deploy.lambda_package import build_zip

    archive = build_zip(tmp_path / "ui-backend.zip")
    probe = (
        "import sys; sys.path[:0] = [sys.argv[1]]; sys.path.append(sys.argv[2]); "
        "import lambda_function, segserve.client; "
        "print(segserve.client.__file__); print(sorted({'numpy', 'torch', 'PIL'} & set(sys.modules)))"
    )
    # -S: no site-packages and no .pth files, so the editable segserve install is invisible; boto3 is added back.
    result = subprocess.run([sys.executable, "-S", "-c", probe, str(archive), sysconfig.get_paths()["purelib"]],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    location, heavy = result.stdout.splitlines()
    assert location.startswith(str(archive)) and heavy == "[]"

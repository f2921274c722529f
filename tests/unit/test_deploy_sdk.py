"""deploy/sdk.py's invoke — sagemaker-core's `Endpoint.invoke` — against the SageMaker-runtime stand-in in front of
a scripted container (tests/unit/conftest.py): what reaches the container, what comes back, sessions and errors.
The CLI never imports the SDK."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from sagemaker.core.resources import Endpoint

from deploy.sdk import invoke
from segserve.client.errors import EndpointError
from tests.client_helpers import point_boto3_at

JSON_TYPE = {"Content-Type": "application/json"}


@pytest.fixture
def runtime(monkeypatch, standin, container):
    point_boto3_at(monkeypatch, standin.url)
    container.seen.clear()
    return container


def test_a_json_request_reaches_the_container_and_its_answer_is_decoded(runtime):
    runtime.reply = (200, b'{"action": "ping", "status": "ready"}', JSON_TYPE)
    answer = invoke(Endpoint(endpoint_name="segserve"), {"action": "ping"})
    assert answer.body == {"action": "ping", "status": "ready"}
    (seen,) = runtime.seen
    assert seen["path"] == "/invocations" and json.loads(seen["body"]) == {"action": "ping"}
    assert seen["headers"]["Content-Type"] == "application/json"
    assert seen["headers"]["Accept"] == "application/json"


def test_raw_image_bytes_go_with_their_custom_attributes(runtime):
    runtime.reply = (200, b'{"action": "langsam", "masks": []}', JSON_TYPE)
    answer = invoke("segserve", b"\xff\xd8 jpeg bytes", content_type="image/jpeg",
                    custom_attributes="action=langsam;text_prompt=dog")
    assert answer.body["action"] == "langsam"
    (seen,) = runtime.seen
    assert seen["body"] == b"\xff\xd8 jpeg bytes" and seen["headers"]["Content-Type"] == "image/jpeg"
    assert seen["headers"]["X-Amzn-SageMaker-Custom-Attributes"] == "action=langsam;text_prompt=dog"


def test_a_session_is_opened_and_its_id_sent_on(runtime):
    opened = "s-1a2b; Expires=2030-01-01T00:00:00Z"
    runtime.reply = (200, b'{"action": "session", "status": "open"}',
                     {**JSON_TYPE, "X-Amzn-SageMaker-New-Session-Id": opened})
    answer = invoke("segserve", {"requestType": "NEW_SESSION"}, session_id="NEW_SESSION")
    assert (answer.session_id, answer.session_expires) == ("s-1a2b", "2030-01-01T00:00:00Z")
    runtime.reply = (200, b'{"action": "sam2", "masks": []}', JSON_TYPE)
    invoke("segserve", {"action": "sam2", "image_id": "abc", "x": 1, "y": 2}, session_id=answer.session_id)
    assert [seen["headers"]["X-Amzn-SageMaker-Session-Id"] for seen in runtime.seen] == ["NEW_SESSION", "s-1a2b"]


def test_the_models_error_is_an_endpoint_error_with_its_status_and_message(runtime):
    error = {"error": {"code": "invalid_request", "message": "x must be inside the image"}}
    runtime.reply = (400, json.dumps(error).encode(), JSON_TYPE)
    with pytest.raises(EndpointError) as raised:
        invoke("segserve", {"action": "sam2", "image_id": "abc", "x": -1, "y": 2})
    assert raised.value.status == 400 and raised.value.from_model
    assert "x must be inside the image" in str(raised.value)


def test_an_unknown_endpoint_is_sagemakers_refusal(runtime):
    with pytest.raises(EndpointError) as raised:
        invoke("no-such-endpoint", {"action": "ping"})
    assert not raised.value.from_model and runtime.seen == []


def test_the_cli_never_imports_the_sdk():
    code = ("import sys, deploy.cli; bad = sorted(m for m in sys.modules if m.split('.')[0] == 'sagemaker'); "
            "print(bad); sys.exit(1 if bad else 0)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr

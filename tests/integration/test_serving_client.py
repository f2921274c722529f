"""The client and the UI's Lambda end to end: boto3 sagemaker-runtime → the SageMaker-runtime stand-in → the
shared live TorchServe, for every action, with the endpoint's errors passed through with their status.

boto3 finds the stand-in only through AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME (and moto's S3, for async, through
AWS_ENDPOINT_URL_S3), exactly as a developer's own code would against `make serve`.
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from deploy import lambda_function
from segserve.client import NEW_SESSION, EndpointError, SegmentationClient, custom_attributes
from segserve.client.mask_files import write_masks
from segserve.client.standin import StandInConfig
from segserve.media.masks import decode_mask_png
from tests.client_helpers import FAKE_AWS, plain_runtime, point_boto3_at, running_standin
from tests.conftest import make_scene
from tests.integration.conftest import S3_BUCKET, VENV_BIN, clean_env
from tests.integration.serving import b64, check_segmentation, check_error_object, decode_mask, encode

POINT = {"x": 80, "y": 85}  # on the red rectangle of the 320x240 scene
ASYNC_OUTPUT = f"s3://{S3_BUCKET}/async-out"


@pytest.fixture(scope="module")
def standin(server):
    config = StandInConfig(server.inference, ("segserve",), async_output=ASYNC_OUTPUT)
    with running_standin(config) as running:
        yield running


@pytest.fixture
def client(monkeypatch, standin, s3) -> SegmentationClient:
    point_boto3_at(monkeypatch, standin.url, s3_url=s3)
    return SegmentationClient("segserve")


def lambda_event(payload: dict) -> dict:
    return {"version": "2.0", "headers": {"content-type": "application/json"},
            "requestContext": {"http": {"method": "POST"}}, "body": json.dumps(payload), "isBase64Encoded": False}


@pytest.fixture
def call_lambda(client, monkeypatch):
    monkeypatch.setenv("ENDPOINT_NAME", "segserve")
    monkeypatch.setenv("ALLOWED_ORIGINS", "*")
    context = SimpleNamespace(aws_request_id="lambda-1")
    return lambda payload: lambda_function.lambda_handler(lambda_event(payload), context)


# --- the client ----------------------------------------------------------------------------------------------


def test_ping_through_the_client(client):
    answer = client.ping()
    assert answer.body["status"] == "ready" and answer.variant == "AllTraffic"


def test_sam2_through_the_client_and_its_masks_written_as_png_files(client, scene_png, tmp_path):
    answer = client.sam2(scene_png, multimask=False, **POINT)
    (entry,) = check_segmentation(answer.body, "sam2")
    files = write_masks(answer.body, tmp_path, stem="click")
    assert [f.name for f in files] == ["click-0.png", "click.json"]
    written = decode_mask_png((tmp_path / "click-0.png").read_bytes())
    assert np.array_equal(written, decode_mask(entry["mask"], "rle", (320, 240)))
    summary = json.loads((tmp_path / "click.json").read_text())
    assert summary["masks"][0]["file"] == "click-0.png" and summary["masks"][0]["area"] == entry["area"]


def test_langsam_through_the_client_from_a_file(client, scene_png, tmp_path):
    image = tmp_path / "scene.png"
    image.write_bytes(scene_png)
    answer = client.langsam(image, text_prompt="red square", max_detections=2, mask_format="png")
    masks = check_segmentation(answer.body, "langsam", mask_format="png")
    assert 1 <= len(masks) <= 2


def test_a_raw_image_body_with_custom_attributes(client, scene_png):
    attributes = custom_attributes({"action": "sam2", "box": [40, 40, 120, 130], "multimask": False})
    answer = client.invoke(scene_png, content_type="image/png", custom_attributes=attributes)
    assert len(check_segmentation(answer.body, "sam2")) == 1


def test_an_image_url_is_fetched_by_the_endpoint(client):
    answer = client.sam2(f"s3://{S3_BUCKET}/scenes/scene.png", multimask=False, **POINT)
    assert len(check_segmentation(answer.body, "sam2")) == 1


@pytest.mark.parametrize("call, status, code, field", [
    (lambda c, png: c.sam2(png, x=321, y=10), 400, "invalid_request", "x"),
    (lambda c, png: c.sam2(image_id="f" * 32, x=1, y=1), 404, "not_found", "image_id"),
    (lambda c, png: c.sam2(encode(make_scene(300, 400), "PNG"), x=1, y=1), 413, "payload_too_large", "image"),
    (lambda c, png: c.langsam(png, text_prompt="x", box_threshold=2), 400, "invalid_request", "box_threshold"),
])
def test_the_endpoints_errors_come_back_with_their_status(client, scene_png, call, status, code, field):
    with pytest.raises(EndpointError) as raised:
        call(client, scene_png)
    error = raised.value
    assert (error.status, error.code, error.field, error.from_model) == (status, code, field, True)
    assert error.request_id  # the endpoint's request id, for its log
    check_error_object(json.loads(error.body), code, field)


def test_a_users_own_boto3_code_sees_sagemakers_model_error(client, scene_png):
    runtime = plain_runtime()
    body = json.dumps({"action": "sam2", "image": b64(scene_png), "x": 321, "y": 10})
    with pytest.raises(runtime.exceptions.ModelError) as raised:
        runtime.invoke_endpoint(EndpointName="segserve", Body=body, ContentType="application/json")
    assert raised.value.response["OriginalStatusCode"] == 400
    assert json.loads(raised.value.response["OriginalMessage"])["error"]["code"] == "invalid_request"


def test_a_session_opened_by_a_click_routes_the_next_clicks_to_the_cached_image(client, scene_png):
    first = client.sam2(scene_png, multimask=False, session_id=NEW_SESSION, **POINT)
    assert first.session_id and first.session_expires.endswith("Z")  # botocore's NewSessionId, parsed
    again = client.sam2(image_id=first.body["image"]["id"], x=90, y=95, multimask=False, session_id=first.session_id)
    assert again.body["cache"] == "hit" and again.session_id is None  # the session goes on; no new one
    closed = client.close_session(first.session_id)
    assert closed.closed_session_id == first.session_id


def test_open_session_without_a_request(client):
    answer = client.open_session()
    assert answer.session_id and answer.body["session"]["id"] == answer.session_id


def test_async_invocation_answer_lands_in_s3(client, scene_png):
    key = f"s3://{S3_BUCKET}/async-in/{uuid.uuid4()}.json"
    invocation = client.invoke_async({"action": "sam2", "image": b64(scene_png), "multimask": False, **POINT}, key)
    assert invocation.output_location.startswith(ASYNC_OUTPUT + "/")
    answer = client.wait_async(invocation, timeout_s=120, poll_s=0.5)
    assert len(check_segmentation(answer.body, "sam2")) == 1


def test_async_invocation_failure_lands_at_the_failure_location(client):
    key = f"s3://{S3_BUCKET}/async-in/{uuid.uuid4()}.json"
    invocation = client.invoke_async({"action": "sam2", "image_id": "f" * 32, "x": 1, "y": 1}, key)
    with pytest.raises(EndpointError) as raised:
        client.wait_async(invocation, timeout_s=120, poll_s=0.5)
    assert raised.value.code == "not_found" and raised.value.field == "image_id"


# --- the Lambda ----------------------------------------------------------------------------------------------


def test_the_lambda_answers_ping(call_lambda):
    reply = call_lambda({"action": "ping"})
    assert reply["statusCode"] == 200 and json.loads(reply["body"])["status"] == "ready"
    assert reply["headers"]["Access-Control-Allow-Origin"] == "*"


def test_the_lambda_answers_sam2_and_langsam(call_lambda, scene_png):
    sam2 = call_lambda({"action": "sam2", "image": b64(scene_png), "multimask": False, **POINT})
    assert sam2["statusCode"] == 200, sam2["body"]
    assert len(check_segmentation(json.loads(sam2["body"]), "sam2")) == 1
    langsam = call_lambda({"action": "langsam", "image": b64(scene_png), "text_prompt": "red square",
                           "max_detections": 1})
    assert langsam["statusCode"] == 200, langsam["body"]
    assert len(check_segmentation(json.loads(langsam["body"]), "langsam")) == 1


def test_the_lambda_passes_sessions_through(client, monkeypatch):
    monkeypatch.setenv("ENDPOINT_NAME", "segserve")
    event = {**lambda_event({"action": "ping"}), "headers": {"content-type": "application/json",
                                                             "x-amzn-sagemaker-session-id": "NEW_SESSION"}}
    reply = lambda_function.lambda_handler(event, SimpleNamespace(aws_request_id="lambda-2"))
    assert reply["statusCode"] == 200
    session_id, expires = reply["headers"]["X-Amzn-SageMaker-New-Session-Id"].split("; Expires=")
    assert session_id and expires.endswith("Z")


@pytest.mark.parametrize("payload, status, code", [
    ({"action": "segment"}, 400, "invalid_request"),
    ({"action": "sam2", "image_id": "f" * 32, "x": 1, "y": 1}, 404, "not_found"),
])
def test_the_lambda_passes_the_endpoints_error_status_and_body_through(call_lambda, payload, status, code):
    reply = call_lambda(payload)
    assert reply["statusCode"] == status
    body = json.loads(reply["body"])
    check_error_object(body, code)
    assert body["error"]["request_id"] != "lambda-1"  # the endpoint's own error, not one the Lambda made


# --- segserve-deploy invoke ----------------------------------------------------------------------------------


@pytest.fixture
def invoke_cli(client, standin, s3):
    """The installed console script, in a clean environment pointing boto3 at the stand-in (and moto's S3).
    (`client` sets the same variables in this process, where the stand-in runs and writes async answers.)"""
    env = clean_env(PATH=f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}", **FAKE_AWS,
                    AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME=standin.url, AWS_ENDPOINT_URL_S3=s3)

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(VENV_BIN / "segserve-deploy"), "invoke", "--name", "segserve", *args],
                              capture_output=True, text=True, env=env, timeout=300)

    return run


def test_invoke_ping_prints_the_json(invoke_cli):
    result = invoke_cli("--action", "ping")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["status"] == "ready"


def test_invoke_sam2_writes_the_masks_as_png_files(invoke_cli, scene_png, tmp_path):
    image = tmp_path / "scene.png"
    image.write_bytes(scene_png)
    out = tmp_path / "out"
    result = invoke_cli("--action", "sam2", "--image", str(image), "--point", "80,85", "--negative", "250,200",
                        "--out", str(out))
    assert result.returncode == 0, result.stderr
    files = [Path(line) for line in result.stdout.splitlines()]
    assert [f.name for f in files] == ["sam2-0.png", "sam2-1.png", "sam2-2.png", "sam2.json"]  # multimask: 3
    summary = json.loads((out / "sam2.json").read_text())
    for entry in summary["masks"]:
        assert int(decode_mask_png((out / entry["file"]).read_bytes()).sum()) == entry["area"]


def test_invoke_langsam_from_an_s3_url(invoke_cli):
    result = invoke_cli("--action", "langsam", "--image", f"s3://{S3_BUCKET}/scenes/scene.png", "--text", "red square",
                        "--max-detections", "1")
    assert result.returncode == 0, result.stderr
    assert len(check_segmentation(json.loads(result.stdout), "langsam")) == 1


def test_invoke_opens_a_session_and_names_it_on_stderr(invoke_cli):
    result = invoke_cli("--action", "ping", "--session", "NEW_SESSION")
    assert result.returncode == 0, result.stderr
    assert result.stderr.startswith("session ") and "(expires 20" in result.stderr


def test_invoke_reports_the_endpoints_error_with_its_status(invoke_cli, scene_png, tmp_path):
    image = tmp_path / "scene.png"
    image.write_bytes(scene_png)
    result = invoke_cli("--action", "sam2", "--image", str(image), "--x", "321", "--y", "10")
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.startswith("segserve-deploy invoke: the endpoint answered 400 invalid_request (x): point")
    assert "Traceback" not in result.stderr


def test_invoke_async_waits_for_the_answer_in_s3(invoke_cli, scene_png, tmp_path):
    image = tmp_path / "scene.png"
    image.write_bytes(scene_png)
    result = invoke_cli("--action", "sam2", "--image", str(image), "--x", "80", "--y", "85", "--single-mask",
                        "--async", "--input-location", f"s3://{S3_BUCKET}/async-in/cli.json", "--wait",
                        "--wait-timeout", "120")
    assert result.returncode == 0, result.stderr
    assert f"answer at {ASYNC_OUTPUT}/" in result.stderr
    assert len(check_segmentation(json.loads(result.stdout), "sam2")) == 1

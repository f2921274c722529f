"""The LLM key from Secrets Manager (SEGSERVE_OPENAI_SECRET_ID), against moto's Secrets Manager on 127.0.0.1.

A worker reads the secret once at start with boto3's default credentials (the execution role on SageMaker);
a missing or unusable secret means no key — refinement then falls back with a warning — never an exception,
and the key is never logged.
"""

from __future__ import annotations

import json
import logging

import pytest

from segserve.prompts.llm_endpoint import SECRET_ID_ENV, llm_endpoint

pytestmark = pytest.mark.integration

KEY = "sk-from-secrets-manager-77c3e1"


@pytest.fixture(scope="module")
def secrets(s3):
    """A client of the moto server the package's s3 fixture runs (moto serves every AWS service)."""
    import boto3

    return boto3.client("secretsmanager", endpoint_url=s3, region_name="us-east-1",
                        aws_access_key_id="testing", aws_secret_access_key="testing")


@pytest.fixture
def aws_env(s3, monkeypatch):
    """boto3's own configuration, as a SageMaker worker has it (here pointing at moto)."""
    for name, value in {"AWS_ENDPOINT_URL_SECRETS_MANAGER": s3, "AWS_DEFAULT_REGION": "us-east-1",
                        "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)


@pytest.mark.parametrize("name, value", [
    ("segserve/bare", KEY),
    ("segserve/json", json.dumps({"OPENAI_API_KEY": KEY})),
    ("segserve/json-lower", json.dumps({"api_key": f"  {KEY}\n"})),
])
def test_the_key_is_read_from_the_secret(secrets, aws_env, caplog, name, value):
    secrets.create_secret(Name=name, SecretString=value)
    with caplog.at_level(logging.DEBUG):
        endpoint = llm_endpoint({SECRET_ID_ENV: name, "OPENAI_API_KEY": "sk-env-key-loses",
                                 "OPENAI_BASE_URL": "http://127.0.0.1:9/v1"})
    assert endpoint.api_key == KEY and endpoint.problem is None
    assert endpoint.base_url == "http://127.0.0.1:9/v1"
    assert f"read from Secrets Manager secret {name!r}" in caplog.text
    assert KEY not in caplog.text


@pytest.mark.parametrize("name, value, logged", [
    ("segserve/missing", None, "ResourceNotFoundException"),
    ("segserve/empty-json", json.dumps({"other": KEY}), "holds no text key"),
    ("segserve/not-a-key", "two words", "holds no text key"),
    ("segserve/binary", b"\x00\x01", "holds no text key"),
])
def test_an_unusable_secret_means_no_key_and_a_reason(secrets, aws_env, caplog, name, value, logged):
    if isinstance(value, bytes):
        secrets.create_secret(Name=name, SecretBinary=value)
    elif value is not None:
        secrets.create_secret(Name=name, SecretString=value)
    with caplog.at_level(logging.WARNING):
        endpoint = llm_endpoint({SECRET_ID_ENV: name})
    assert endpoint.api_key is None
    assert endpoint.problem == f"the LLM API key could not be read from Secrets Manager secret {name!r}"
    assert logged in caplog.text and KEY not in caplog.text


def test_an_unreachable_secrets_manager_means_no_key(aws_env, monkeypatch, caplog):
    from tests.processes import free_port

    monkeypatch.setenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    with caplog.at_level(logging.WARNING):
        endpoint = llm_endpoint({SECRET_ID_ENV: "segserve/anything"})
    assert endpoint.api_key is None and "could not be read" in endpoint.problem
    assert "EndpointConnectionError" in caplog.text

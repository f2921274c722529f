"""`up --openai-secret`: only the secret's id reaches the container (as SEGSERVE_OPENAI_SECRET_ID); its value is in
no output of the real console script and nowhere in what DescribeModel or DescribeEndpointConfig show."""

from __future__ import annotations

import json
import os
import subprocess

from tests.integration.deploy.cli import run_cli, up_args

NAME = "seg-secret"
SECRET_ID = "segserve/openai"
SECRET_VALUE = "sk-test-0123456789abcdefSECRET"


def test_only_the_secret_id_reaches_the_model(aws, model_store):
    aws.client("secretsmanager").create_secret(Name=SECRET_ID, SecretString=SECRET_VALUE)
    result = subprocess.run(["segserve-deploy", *up_args(NAME, str(model_store), "--openai-secret", SECRET_ID)],
                            capture_output=True, text=True, timeout=120, env=os.environ.copy())
    assert result.returncode == 0, result.stderr
    assert SECRET_ID in result.stdout
    assert SECRET_VALUE not in result.stdout + result.stderr
    sagemaker = aws.client("sagemaker")
    config_name = sagemaker.describe_endpoint(EndpointName=NAME)["EndpointConfigName"]
    config = sagemaker.describe_endpoint_config(EndpointConfigName=config_name)
    model = sagemaker.describe_model(ModelName=config["ProductionVariants"][0]["ModelName"])
    assert model["PrimaryContainer"]["Environment"] == {"SEGSERVE_OPENAI_SECRET_ID": SECRET_ID}
    assert SECRET_VALUE not in json.dumps([model, config], default=str)


def test_a_missing_secret_stops_up_before_anything_is_made(aws, capsys, model_store):
    result = run_cli(capsys, *up_args(NAME, str(model_store), "--openai-secret", "no/such/secret"))
    assert result.status == 1
    assert "--openai-secret: no secret 'no/such/secret'" in result.err
    assert aws.client("sagemaker").list_models()["Models"] == []


def test_a_key_given_in_place_of_the_secret_id_is_refused_and_not_echoed(aws, capsys, model_store):
    result = run_cli(capsys, *up_args(NAME, str(model_store), "--openai-secret", SECRET_VALUE))
    assert result.status == 1 and "not the key itself" in result.err
    assert SECRET_VALUE not in result.out + result.err
    assert aws.client("sagemaker").list_models()["Models"] == []

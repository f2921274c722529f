"""deploy/sdk.py — the SageMaker SDK's resource classes (sagemaker-core) — against moto over HTTP.

Where the boundary is (sagemaker-core 2.27.0, moto 5.2.5): every create request sagemaker-core sends is accepted
by moto and makes the resource, and `Endpoint.invoke` reaches moto's runtime; but every call that
builds a resource object from a Describe reply — `Model.get`/`EndpointConfig.get`/`Endpoint.get`, `refresh`,
`wait_for_status`, `get_all`, and so `Model.create`/`EndpointConfig.create`/`Endpoint.create`, which end with a get —
raises pydantic's ValidationError, because moto answers `VpcConfig: {}` and `DataCaptureConfig: {}` where AWS
leaves them out. With those two empty structures removed from moto's replies (conftest.aws_shaped_describes), the
whole deployment runs through sagemaker-core unchanged.
"""

from __future__ import annotations

import pytest
from pydantic import ValidationError
from sagemaker.core.resources import Endpoint, EndpointConfig, Model

from deploy.aws import DeployError
from deploy.endpoint_config import INFERENCE_AMI_VERSION, STARTUP_TIMEOUT_S
from deploy.naming import is_stamped
from deploy.sdk import create_endpoint, invoke
from tests.integration.deploy.cli import BUCKET, IMAGE_URI, ROLE_ARN, run_cli

NAME = "seg-sdk"


def _deploy(aws, model_store, **extra):
    return create_endpoint(NAME, image_uri=IMAGE_URI, role_arn=ROLE_ARN, model_data=str(model_store), bucket=BUCKET,
                           session=aws, poll_s=1, **extra)


def test_moto_accepts_every_request_but_sagemaker_core_refuses_its_describe_replies(aws, model_store):
    sagemaker = aws.client("sagemaker")
    with pytest.raises(ValidationError) as refused:
        _deploy(aws, model_store)
    assert {error["loc"][0] for error in refused.value.errors()} == {"vpc_config"}
    assert {e["type"] for e in refused.value.errors()} == {"missing"}  # inside moto's empty VpcConfig: {}
    (model,) = sagemaker.list_models()["Models"]  # CreateModel itself went through; Model.get after it did not
    assert is_stamped(NAME, model["ModelName"])
    assert sagemaker.describe_model(ModelName=model["ModelName"])["VpcConfig"] == {}

    resource = model["ModelName"]
    sagemaker.create_endpoint_config(EndpointConfigName=resource, ProductionVariants=[{
        "VariantName": "AllTraffic", "ModelName": resource, "InstanceType": "ml.g4dn.xlarge",
        "InitialInstanceCount": 1}])
    sagemaker.create_endpoint(EndpointName=NAME, EndpointConfigName=resource)
    for get, field in ((lambda: EndpointConfig.get(endpoint_config_name=resource, session=aws), "data_capture_config"),
                       (lambda: Endpoint.get(endpoint_name=NAME, session=aws), "data_capture_config"),
                       (lambda: Model.get(model_name=resource, session=aws), "vpc_config")):
        with pytest.raises(ValidationError) as refused:
            get()
        assert {error["loc"][0] for error in refused.value.errors()} == {field}

    answer = invoke(NAME, {"action": "ping"}, session=aws)  # no Describe on the way: moto's placeholder answer
    assert answer.data == b"body"


def test_create_endpoint_makes_what_up_makes_and_down_removes_it(aws_shaped_describes, capsys, model_store):
    aws = aws_shaped_describes
    endpoint = _deploy(aws, model_store, instances=2)
    assert endpoint.endpoint_name == NAME and endpoint.endpoint_status == "InService"
    sagemaker = aws.client("sagemaker")
    described = sagemaker.describe_endpoint(EndpointName=NAME)
    resource = described["EndpointConfigName"]
    assert is_stamped(NAME, resource)
    (variant,) = sagemaker.describe_endpoint_config(EndpointConfigName=resource)["ProductionVariants"]
    assert (variant["ModelName"], variant["InstanceType"], variant["InitialInstanceCount"]) == \
        (resource, "ml.g4dn.xlarge", 2)
    assert variant["InferenceAmiVersion"] == INFERENCE_AMI_VERSION
    assert variant["ContainerStartupHealthCheckTimeoutInSeconds"] == STARTUP_TIMEOUT_S
    model = sagemaker.describe_model(ModelName=resource)
    assert model["ExecutionRoleArn"] == ROLE_ARN and model["PrimaryContainer"]["Image"] == IMAGE_URI
    data_url = model["PrimaryContainer"]["ModelDataUrl"]
    assert data_url.startswith(f"s3://{BUCKET}/segserve-deploy/{NAME}/") and data_url.endswith("/model.tar.gz")
    tags = sagemaker.list_tags(ResourceArn=described["EndpointArn"])["Tags"]
    assert {"Key": "segserve:deployment", "Value": NAME} in tags

    with pytest.raises(DeployError, match="segserve-deploy up --name seg-sdk"):
        _deploy(aws, model_store)  # one endpoint per name; updates are `up`'s

    result = run_cli(capsys, "down", "--name", NAME)
    assert result.status == 0, result.err
    assert f"deleted model {resource}" in result.out and f"deleted model data {data_url}" in result.out
    assert sagemaker.list_endpoints()["Endpoints"] == [] and sagemaker.list_models()["Models"] == []


def test_bad_arguments_are_refused_before_anything_is_made(aws, model_store):
    with pytest.raises(ValueError, match="endpoint name"):
        create_endpoint("bad_name", image_uri=IMAGE_URI, role_arn=ROLE_ARN, model_data="s3://b/m.tar.gz",
                        session=aws)
    with pytest.raises(ValueError, match="give bucket="):
        create_endpoint(NAME, image_uri=IMAGE_URI, role_arn=ROLE_ARN, model_data=str(model_store), session=aws)
    with pytest.raises(DeployError, match="Volta"):
        _deploy(aws, model_store, instance_type="ml.p3.2xlarge")
    assert aws.client("sagemaker").list_models()["Models"] == []

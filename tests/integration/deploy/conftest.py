"""A moto server on 127.0.0.1 for the segserve-deploy tests, with the one SageMaker call moto 5.2.5 lacks, and the
HTTP API in CloudFormation.

moto runs in this process (moto.server.ThreadedMotoServer) so that its SageMaker backend can be given an
UpdateEndpoint (moto answers 500 NotImplementedError): it switches the endpoint to the new config and its
variants, and records each call, so a test can tell an update from a delete-and-create. moto's CloudFormation skips
AWS::ApiGatewayV2::* resources; the Api itself is given one here (made in moto's own API Gateway v2 backend), so a
stack's outputs that name it — the page's URL — are filled in, and a change set's stack gets its outputs (moto
5.2.5's ChangeSet.apply never rebuilds them: describe_stacks shows none). The API's routes, integration and stage
stay skipped (tests/unit/test_lambda_template.py checks them). boto3 reaches the server over real HTTP through
AWS_ENDPOINT_URL, exactly as it would reach AWS; the CLI is never told about moto.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
import requests

from tests.integration.deploy.cli import BUCKET, REGION
from tests.processes import free_port



@dataclass
class UpdateEndpointStandIn:
    """What moto's UpdateEndpoint (added here) did, and whether it should fail as SageMaker does: roll back."""

    calls: list[tuple[str, str]] = field(default_factory=list)  # (endpoint, config) of every call
    scalable_during: list[bool] = field(default_factory=list)  # was the variant a scalable target at each call
    roll_back_reason: str | None = None


UPDATES = UpdateEndpointStandIn()


def _update_endpoint(backend, endpoint_name: str, endpoint_config_name: str) -> str:
    from moto.applicationautoscaling.models import applicationautoscaling_backends
    from moto.sagemaker.exceptions import ValidationError

    endpoint = backend.endpoints.get(endpoint_name)
    if endpoint is None:
        raise ValidationError(message=f"Could not find endpoint '{endpoint_name}'.")
    config = backend.describe_endpoint_config(endpoint_config_name)
    UPDATES.calls.append((endpoint_name, endpoint_config_name))
    autoscaling = applicationautoscaling_backends[backend.account_id][backend.region_name]
    UPDATES.scalable_during.append(any(resource.startswith(f"endpoint/{endpoint_name}/")
                                       for targets in autoscaling.targets.values() for resource in targets))
    if UPDATES.roll_back_reason:  # the new instances never got healthy: the old config keeps serving
        endpoint.failure_reason = UPDATES.roll_back_reason
        return endpoint.arn
    endpoint.endpoint_config_name = endpoint_config_name
    endpoint.production_variants = endpoint._process_production_variants(config["ProductionVariants"])
    return endpoint.arn


def _apply_with_outputs(apply):
    from moto.cloudformation.parsing import OutputMap

    def apply_with_outputs(change_set) -> None:
        apply(change_set)
        stack = change_set.stack
        stack.output_map = OutputMap(stack.resource_map, change_set.template_dict, stack.stack_id)

    return apply_with_outputs


def _http_api_in_cloudformation():
    """A CloudFormation model for AWS::ApiGatewayV2::Api in moto: its Ref is the API id, as in AWS."""
    from moto.apigatewayv2.models import apigatewayv2_backends
    from moto.cloudformation import parsing
    from moto.core.common_models import CloudFormationModel

    class HttpApi(CloudFormationModel):
        def __init__(self, api, backend):
            self.api, self.backend = api, backend
            self.physical_resource_id = api.api_id

        @staticmethod
        def cloudformation_type() -> str:
            return "AWS::ApiGatewayV2::Api"

        @staticmethod
        def cloudformation_name_type() -> str:
            return "Name"

        @classmethod
        def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name,
                                            **kwargs):
            backend = apigatewayv2_backends[account_id][region_name]
            properties = cloudformation_json["Properties"]
            api = backend.create_api(
                api_key_selection_expression=None, cors_configuration=None,
                description=properties.get("Description"), disable_schema_validation=None,
                disable_execute_api_endpoint=None, name=resource_name, protocol_type=properties["ProtocolType"],
                route_selection_expression=None, tags={}, version=None)
            return cls(api, backend)

        @classmethod
        def update_from_cloudformation_json(cls, original_resource, new_resource_name, cloudformation_json,
                                            account_id, region_name):
            return original_resource

        def delete(self, account_id, region_name) -> None:
            self.backend.delete_api(self.api.api_id)

    for cached in (parsing.get_model_list, parsing.get_model_map, parsing.get_name_type_map):
        cached.cache_clear()
    return HttpApi


@pytest.fixture(scope="package")
def moto_endpoint():
    from moto.cloudformation.models import ChangeSet
    from moto.core.responses import ActionResult
    from moto.sagemaker.models import SageMakerModelBackend
    from moto.sagemaker.responses import SageMakerResponse
    from moto.server import ThreadedMotoServer

    def respond(self):
        arn = self.sagemaker_backend.update_endpoint(self._get_param("EndpointName"),
                                                     self._get_param("EndpointConfigName"))
        return ActionResult({"EndpointArn": arn})

    patch = pytest.MonkeyPatch()
    patch.setattr(SageMakerModelBackend, "update_endpoint", _update_endpoint, raising=False)
    patch.setattr(SageMakerResponse, "update_endpoint", respond, raising=False)
    patch.setattr(ChangeSet, "apply", _apply_with_outputs(ChangeSet.apply))
    _http_api = _http_api_in_cloudformation()  # kept alive: moto finds its models by __subclasses__()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=free_port(), verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()
        patch.undo()


@pytest.fixture
def aws(moto_endpoint, monkeypatch, tmp_path):
    """A fresh moto account (reset per test) that every boto3 client in this process reaches through
    AWS_ENDPOINT_URL; no real profile or credentials file can be read."""
    import boto3

    requests.post(f"{moto_endpoint}/moto-api/reset", timeout=10).raise_for_status()
    UPDATES.calls.clear()
    UPDATES.scalable_during.clear()
    UPDATES.roll_back_reason = None
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_SAGEMAKER", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    session = boto3.Session(region_name=REGION)
    session.client("s3").create_bucket(Bucket=BUCKET)
    return session


@pytest.fixture
def update_endpoint(aws) -> UpdateEndpointStandIn:
    return UPDATES


@pytest.fixture
def model_store(tmp_path):
    """A small model store folder shaped like serving/build_model_store.py's: the three model folders with the
    version that built them, a weights file only its owner may read (as transformers writes it), a symbolic link."""
    from segserve.build_info import write_build_info

    store = tmp_path / "model_store"
    for model in ("router", "langsam", "sam2"):
        (store / model).mkdir(parents=True)
        write_build_info(store / model)
        (store / model / "handler.py").write_text(f"# {model} handler\n")
        (store / model / "__pycache__").mkdir()
        (store / model / "__pycache__" / "handler.cpython-311.pyc").write_bytes(b"cache")
    weights = store / "langsam" / "weights"
    weights.mkdir()
    (weights / "model.safetensors").write_bytes(b"\0" * 4096)
    (weights / "model.safetensors").chmod(0o600)
    (store / "sam2" / "config.yaml").symlink_to(store / "router" / "handler.py")
    return store


@pytest.fixture
def aws_shaped_describes(aws, monkeypatch):
    """moto's DescribeModel, DescribeEndpointConfig and DescribeEndpoint as AWS answers them: without the empty
    `VpcConfig: {}` / `DataCaptureConfig: {}` moto 5.2.5 puts in (AWS leaves out what was never set). sagemaker-core
    2.27 refuses those empty structures (its pydantic shapes require their fields), and every resource it reads
    back — `Model.create` and `Endpoint.create` end with a get — fails on them (test_sdk.py)."""
    from moto.core.responses import ActionResult
    from moto.sagemaker.responses import SageMakerResponse

    def without_empty(describe):
        def answer(self) -> ActionResult:
            return ActionResult({k: v for k, v in describe(self).result.items() if v != {}})

        return answer

    for name in ("describe_model", "describe_endpoint_config", "describe_endpoint"):
        monkeypatch.setattr(SageMakerResponse, name, without_empty(getattr(SageMakerResponse, name)))
    return aws

"""The SageMaker SDK's way, for notebooks: deploy and call a segserve endpoint with sagemaker-core's resource classes.

    pip install ".[sagemaker]"      # sagemaker-core, the resource layer of SageMaker Python SDK v3

    from deploy.sdk import create_endpoint, invoke
    endpoint = create_endpoint("segserve", image_uri=IMAGE, role_arn=ROLE, model_data="s3://bucket/…/model.tar.gz")
    invoke(endpoint, {"action": "ping"}).body

It makes exactly what `segserve-deploy up` makes (deploy/naming.py's names and tag, deploy/endpoint_config.py's
production variant: the GPU AMI, the startup and download timeouts), through `Model.create`,
`EndpointConfig.create` and `Endpoint.create`, so `segserve-deploy up` updates it and `segserve-deploy down` removes
it. Answers are segserve.client's `Answer`s and its errors (EndpointError with the model's status and message).
The CLI does not use this module: it stays on plain boto3.
"""

from __future__ import annotations

import argparse
import json

import boto3
from botocore.exceptions import ClientError
from sagemaker.core.resources import Endpoint, EndpointConfig, Model
from sagemaker.core.shapes import ContainerDefinition, ProductionVariant, Tag
from sagemaker.core.utils.code_injection.codec import transform
from sagemaker.core.utils.utils import Unassigned

from deploy import model_data as model_data_files
from deploy.aws import DeployError, is_missing
from deploy.endpoint_config import STARTUP_TIMEOUT_S, check_instance_type, production_variant
from deploy.naming import DEPLOYMENT_TAG, check_name, stamped
from segserve.client.endpoint import JSON, Answer, answer_from, call

WAIT_TIMEOUT_S = 3600  # a GPU endpoint takes 5-15 minutes; the startup health check alone may take 30


def create_endpoint(name: str, *, image_uri: str, role_arn: str, model_data: str, bucket: str | None = None,
                    instance_type: str = "ml.g4dn.xlarge", instances: int = 1,
                    startup_timeout_s: int = STARTUP_TIMEOUT_S, environment: dict[str, str] | None = None,
                    session: boto3.Session | None = None, wait: bool = True, poll_s: int = 30) -> Endpoint:
    """A new endpoint `name` serving `image_uri` with `model_data` (an s3:// model.tar.gz, or a model store folder
    packed and uploaded to `bucket`). Waits until it is InService unless `wait=False`. An existing endpoint is
    refused: `segserve-deploy up` updates one without downtime and deletes what it replaced."""
    try:
        check_name(name)
    except argparse.ArgumentTypeError as exc:  # the CLI's check, as a plain ValueError here
        raise ValueError(f"endpoint name {exc}") from None
    if not model_data.startswith("s3://") and not bucket:
        raise ValueError("model_data is a folder: give bucket= (an S3 bucket in the endpoint's region) to upload it")
    check_instance_type(instance_type)
    session = session or boto3.Session()  # a session of our own: sagemaker-core caches its clients per session
    if _exists(session, name):
        raise DeployError(f"endpoint {name} exists: update it with `segserve-deploy up --name {name} …` (no "
                          f"downtime), or remove it with `segserve-deploy down --name {name}`")
    resource = stamped(name)
    model_data_url = model_data_files.resolve(session.client("s3"), model_data, bucket, resource, name)
    tags = [Tag(key=DEPLOYMENT_TAG, value=name)]
    where = {"session": session, "region": session.region_name}
    Model.create(model_name=resource, execution_role_arn=role_arn, tags=tags, **where,
                 primary_container=ContainerDefinition(image=image_uri, model_data_url=model_data_url,
                                                       environment=environment or {}))
    variant = production_variant(resource, instance_type, instances, startup_timeout_s)
    EndpointConfig.create(endpoint_config_name=resource, tags=tags, **where,
                          production_variants=[ProductionVariant(**transform(variant, "ProductionVariant"))])
    endpoint = Endpoint.create(endpoint_name=name, endpoint_config_name=resource, tags=tags, **where)
    if wait:
        endpoint.wait_for_status("InService", poll=poll_s, timeout=WAIT_TIMEOUT_S)
    return endpoint


def invoke(endpoint: Endpoint | str, request: dict | bytes, *, content_type: str = JSON,
           custom_attributes: str | None = None, session_id: str | None = None,
           session: boto3.Session | None = None) -> Answer:
    """`Endpoint.invoke` with a JSON request (a dict) or raw bytes of `content_type`; the answer decoded as
    segserve.client decodes it (`.body`, and `.session_id` after a `session_id="NEW_SESSION"` request)."""
    if isinstance(endpoint, str):
        endpoint = Endpoint(endpoint_name=endpoint)
    optional = {"custom_attributes": custom_attributes, "session_id": session_id}
    output = call(endpoint.invoke, body=json.dumps(request).encode() if isinstance(request, dict) else request,
                  content_type=content_type, accept=JSON, session=session or boto3.Session(),
                  **{k: v for k, v in optional.items() if v is not None})
    fields = {"Body": output.body, "ContentType": output.content_type, "NewSessionId": output.new_session_id,
              "ClosedSessionId": output.closed_session_id,
              "InvokedProductionVariant": output.invoked_production_variant}
    return answer_from({k: v for k, v in fields.items() if not isinstance(v, Unassigned)})


def _exists(session: boto3.Session, name: str) -> bool:
    try:
        Endpoint.get(endpoint_name=name, session=session, region=session.region_name)
    except ClientError as exc:
        if is_missing(exc):
            return False
        raise
    return True

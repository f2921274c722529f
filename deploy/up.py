"""`segserve-deploy up`: create or update a SageMaker endpoint (model, endpoint config, endpoint, autoscaling).

Every run makes a new model and a new endpoint config (both are immutable in SageMaker). A new name gets a new
endpoint; an existing one is switched to the new config with UpdateEndpoint, which starts the new instances, moves
the traffic once they are healthy and then stops the old ones, so there is no downtime. The old config and model are
deleted after the update is in service; if SageMaker rolls the update back, the new ones are deleted instead.
"""

from __future__ import annotations

import argparse

from botocore.exceptions import ClientError, WaiterError

from deploy import model_data, scaling
from deploy.aws import DeployError, is_missing, session
from deploy.endpoint_config import (
    STARTUP_TIMEOUT_S,
    async_inference_config,
    check_instance_type,
    production_variant,
)
from deploy.naming import DEPLOYMENT_TAG, check_name, is_stamped, stamped

OPENAI_SECRET_ENV = "SEGSERVE_OPENAI_SECRET_ID"  # the langsam worker reads the secret itself, at start
WAIT = {"Delay": 30, "MaxAttempts": 120}  # an hour: a GPU endpoint takes 5-15 minutes

EPILOG = """examples:
  segserve-deploy up --name segserve --image-uri 123456789012.dkr.ecr.eu-west-1.amazonaws.com/segserve:0.1.0 \\
      --role-arn arn:aws:iam::123456789012:role/segserve-sagemaker --model-data model_store --bucket my-models
  segserve-deploy up ... --instances 1 --max-instances 4          # autoscaling on invocations per instance
  segserve-deploy up ... --async-output s3://my-bucket/async/     # asynchronous, scales to zero when idle
  segserve-deploy up ... --openai-secret segserve/openai          # only the secret's id reaches the container
"""


def register(commands, common: argparse.ArgumentParser) -> None:
    parser = commands.add_parser(
        "up", parents=[common], help="create the endpoint, or update it with no downtime", description=__doc__,
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--name", required=True, type=check_name,
                        help="endpoint name; models and configs are named after it")
    parser.add_argument("--image-uri", required=True, metavar="URI",
                        help="the ECR image (from `segserve-deploy image`)")
    parser.add_argument("--role-arn", required=True, metavar="ARN", help="SageMaker execution role")
    parser.add_argument("--model-data", required=True, metavar="DIR|s3://…",
                        help="a model store folder (packed as model.tar.gz and uploaded) or an s3:// model.tar.gz")
    parser.add_argument("--bucket", required=True, help="S3 bucket for the uploaded model data")
    parser.add_argument("--instance-type", default="ml.g4dn.xlarge", help="(default: %(default)s)")
    parser.add_argument("--instances", type=int, default=1, help="initial instance count (default: 1)")
    parser.add_argument("--max-instances", type=int, help="autoscaling maximum (default: --instances: no autoscaling)")
    parser.add_argument("--min-instances", type=int,
                        help="autoscaling minimum (default: --instances; 0 for an asynchronous endpoint)")
    parser.add_argument("--invocations-per-instance", type=float, default=60, metavar="N",
                        help="real time: scale to keep about N invocations per instance per minute (default: 60)")
    parser.add_argument("--backlog-per-instance", type=float, default=4, metavar="N",
                        help="asynchronous: scale to keep about N queued requests per instance (default: 4)")
    parser.add_argument("--async-output", metavar="s3://…", help="make it an asynchronous endpoint writing here")
    parser.add_argument("--openai-secret", metavar="SECRET_ID",
                        help="Secrets Manager secret with the OpenAI key; only its id reaches the container")
    parser.add_argument("--startup-timeout", type=int, default=STARTUP_TIMEOUT_S, metavar="SECONDS",
                        help="how long an instance may take to answer /ping (60-3600, default: %(default)s)")
    parser.set_defaults(run=run)


def scaling_plan(args: argparse.Namespace) -> scaling.ScalingPlan:
    asynchronous = args.async_output is not None
    if args.instances < 1:
        raise DeployError("--instances must be at least 1")
    low = args.min_instances if args.min_instances is not None else (0 if asynchronous else args.instances)
    high = args.max_instances if args.max_instances is not None else max(args.instances, 1)
    if low < 0 or (low == 0 and not asynchronous):
        raise DeployError("--min-instances 0 (scale to zero) needs an asynchronous endpoint (--async-output)")
    if not low <= args.instances <= high:
        raise DeployError(f"need --min-instances ({low}) <= --instances ({args.instances}) "
                          f"<= --max-instances ({high})")
    if not 60 <= args.startup_timeout <= 3600:
        raise DeployError("--startup-timeout must be between 60 and 3600 seconds")
    target = args.backlog_per_instance if asynchronous else args.invocations_per_instance
    return scaling.ScalingPlan(low, high, asynchronous, target)


def run(args: argparse.Namespace) -> int:
    plan = scaling_plan(args)
    check_instance_type(args.instance_type)
    aws = session(args)
    sagemaker, autoscaling, cloudwatch = (aws.client(n) for n in ("sagemaker", "application-autoscaling",
                                                                   "cloudwatch"))
    endpoint = describe_endpoint(sagemaker, args.name)
    if endpoint is not None and endpoint["EndpointStatus"] != "InService":
        raise DeployError(f"endpoint {args.name} is {endpoint['EndpointStatus']}: wait until it is InService "
                          f"(or, if Failed, run `segserve-deploy down --name {args.name}` first)")
    if args.openai_secret:
        check_secret(aws.client("secretsmanager"), args.openai_secret)
    resource = stamped(args.name)
    model_data_url = model_data.resolve(aws.client("s3"), args.model_data, args.bucket, resource, args.name)
    print(f"model data: {model_data_url}")
    instances = args.instances
    if endpoint is not None and scaling.current_target(autoscaling, args.name) is not None:
        # Keep what autoscaling is running, within the new bounds: an update must not drop capacity under load.
        running = endpoint["ProductionVariants"][0].get("DesiredInstanceCount", instances)
        instances = min(max(running, instances), plan.max_instances)
    create_model_and_config(sagemaker, args, resource, model_data_url, instances)
    if endpoint is None:
        sagemaker.create_endpoint(EndpointName=args.name, EndpointConfigName=resource, Tags=_tags(args.name))
        print(f"creating endpoint {args.name} (a GPU endpoint takes 5-15 minutes) ...", flush=True)
        wait_in_service(sagemaker, args.name)
        replaced = []
    else:
        replaced = update(sagemaker, autoscaling, cloudwatch, args, endpoint, resource)
    policies = scaling.apply(autoscaling, cloudwatch, args.name, plan)
    report(args, resource, instances, plan, policies, replaced)
    return 0


def describe_endpoint(sagemaker, name: str) -> dict | None:
    try:
        return sagemaker.describe_endpoint(EndpointName=name)
    except ClientError as exc:
        if is_missing(exc):
            return None
        raise


def check_secret(secretsmanager, secret_id: str) -> None:
    """The secret exists (DescribeSecret reads metadata only: its value is never fetched here)."""
    if secret_id.startswith("sk-"):  # a pasted key would end up in the model's environment: refuse, don't echo it
        raise DeployError("--openai-secret takes the Secrets Manager secret's name or ARN, not the key itself: "
                          "store the key with `aws secretsmanager create-secret --name segserve/openai "
                          "--secret-string …` and pass segserve/openai")
    try:
        secretsmanager.describe_secret(SecretId=secret_id)
    except ClientError as exc:
        if is_missing(exc):
            raise DeployError(f"--openai-secret: no secret {secret_id!r} in this account and region") from exc
        print(f"warning: could not check secret {secret_id!r} ({exc.response['Error'].get('Code')}); "
              "the endpoint's role must be able to read it")


def _tags(name: str) -> list[dict]:
    return [{"Key": DEPLOYMENT_TAG, "Value": name}]


def create_model_and_config(sagemaker, args: argparse.Namespace, resource: str, model_data_url: str,
                            instances: int) -> None:
    environment = {OPENAI_SECRET_ENV: args.openai_secret} if args.openai_secret else {}
    sagemaker.create_model(
        ModelName=resource, ExecutionRoleArn=args.role_arn, Tags=_tags(args.name),
        PrimaryContainer={"Image": args.image_uri, "ModelDataUrl": model_data_url, "Environment": environment})
    config = {"EndpointConfigName": resource, "Tags": _tags(args.name),
              "ProductionVariants": [production_variant(resource, args.instance_type, instances,
                                                        args.startup_timeout)]}
    if args.async_output:
        config["AsyncInferenceConfig"] = async_inference_config(args.async_output)
    try:
        sagemaker.create_endpoint_config(**config)
    except ClientError:
        sagemaker.delete_model(ModelName=resource)
        raise


def wait_in_service(sagemaker, name: str) -> dict:
    try:
        sagemaker.get_waiter("endpoint_in_service").wait(EndpointName=name, WaiterConfig=WAIT)
    except WaiterError as exc:
        endpoint = describe_endpoint(sagemaker, name) or {}
        reason = endpoint.get("FailureReason") or str(exc)
        raise DeployError(f"endpoint {name} is {endpoint.get('EndpointStatus', 'gone')}: {reason} "
                          "(the container's log is in CloudWatch, /aws/sagemaker/Endpoints/" + name + ")") from exc
    return sagemaker.describe_endpoint(EndpointName=name)


def update(sagemaker, autoscaling, cloudwatch, args, endpoint: dict, resource: str) -> list[str]:
    """UpdateEndpoint to the new config; returns the old config and models, deleted once the new one serves."""
    old_config = endpoint["EndpointConfigName"]
    try:
        old_variants = sagemaker.describe_endpoint_config(EndpointConfigName=old_config)["ProductionVariants"]
    except ClientError as exc:
        if not is_missing(exc):
            raise
        old_variants = []
    if any(v.get("InstanceType") != args.instance_type for v in old_variants):
        # AWS refuses an instance-type change on a scalable target; the policies are put back after the update.
        scaling.remove(autoscaling, cloudwatch, args.name)
    try:
        sagemaker.update_endpoint(EndpointName=args.name, EndpointConfigName=resource)
    except ClientError:
        _delete_unused(sagemaker, resource)
        raise
    print(f"updating endpoint {args.name} to {resource} (the old instances serve until the new ones are "
          "healthy) ...", flush=True)
    serving = wait_in_service(sagemaker, args.name)
    if serving["EndpointConfigName"] != resource:
        _delete_unused(sagemaker, resource)
        raise DeployError(f"SageMaker rolled the update back to {serving['EndpointConfigName']}: "
                          f"{serving.get('FailureReason', 'no reason given')}")
    replaced = []
    if is_stamped(args.name, old_config):
        sagemaker.delete_endpoint_config(EndpointConfigName=old_config)
        replaced.append(f"endpoint config {old_config}")
    for model in {v["ModelName"] for v in old_variants}:
        if is_stamped(args.name, model) and model != resource:
            sagemaker.delete_model(ModelName=model)
            replaced.append(f"model {model}")
    return replaced


def _delete_unused(sagemaker, resource: str) -> None:
    """The config and model of an update that did not happen (nothing else refers to them)."""
    sagemaker.delete_endpoint_config(EndpointConfigName=resource)
    sagemaker.delete_model(ModelName=resource)


def report(args, resource: str, instances: int, plan: scaling.ScalingPlan, policies: list[str],
           replaced: list[str]) -> None:
    kind = f"asynchronous, results in {args.async_output}" if plan.asynchronous else "real time"
    print(f"endpoint {args.name}: InService ({kind})")
    print(f"  model and endpoint config: {resource} ({args.instance_type} x {instances}, image {args.image_uri})")
    if policies:
        unit = "queued requests" if plan.asynchronous else "invocations per minute"
        print(f"  autoscaling: {plan.min_instances}-{plan.max_instances} instances, about {plan.target:g} {unit} "
              f"per instance ({', '.join(policies)})")
    else:
        print("  autoscaling: off (give --max-instances above --instances to turn it on)")
    if args.openai_secret:
        print(f"  prompt refinement: the container reads secret {args.openai_secret!r} at start")
    for old in replaced:
        print(f"  deleted the replaced {old}")
    print(f"try it: segserve-deploy invoke --name {args.name} --action ping")

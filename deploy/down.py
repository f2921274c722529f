"""`segserve-deploy down`: delete everything `up` and `ui` made for a name. Safe to run twice.

In order: the web UI's stack NAME-ui (only if `ui` made it: it carries NAME's tag) and the Lambda zips `ui`
uploaded; the autoscaling alarm, policies and scalable target; the endpoint (waiting until it is gone); every
endpoint config and model named NAME-<stamp>; the model.tar.gz files `up` uploaded for them (never an s3:// file
you passed to `up` yourself; --keep-model-data keeps them all). Batch transform jobs are not touched: finished jobs
cost nothing and cannot be deleted.
"""

from __future__ import annotations

import argparse

from botocore.exceptions import ClientError, WaiterError

from deploy import scaling, ui
from deploy.aws import DeployError, is_missing, session, split_s3_url
from deploy.naming import check_name, is_stamped, is_uploaded_model_data

WAIT = {"Delay": 15, "MaxAttempts": 80}


def register(commands, common: argparse.ArgumentParser) -> None:
    parser = commands.add_parser(
        "down", parents=[common], help="delete the endpoint, its configs, models, autoscaling and web UI",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--name", required=True, type=check_name, help="the name given to `up`")
    parser.add_argument("--keep-model-data", action="store_true", help="leave the uploaded model.tar.gz files in S3")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    aws = session(args)
    sagemaker, s3 = aws.client("sagemaker"), aws.client("s3")
    deleted = 0
    data_deleted: set[str] = set()  # several models may share one uploaded file (`up --model-data s3://…` again)

    def done(what: str) -> None:
        nonlocal deleted
        deleted += 1
        print(f"deleted {what}", flush=True)

    ui.remove(aws, args.name, done)
    if scaling.remove(aws.client("application-autoscaling"), aws.client("cloudwatch"), args.name):
        done("autoscaling policies and target")
    if _delete_endpoint(sagemaker, args.name):
        done(f"endpoint {args.name}")
    for config in _stamped(sagemaker, "list_endpoint_configs", "EndpointConfigs", "EndpointConfigName", args.name):
        if _ignore_missing(sagemaker.delete_endpoint_config, EndpointConfigName=config):
            done(f"endpoint config {config}")
    for model in _stamped(sagemaker, "list_models", "Models", "ModelName", args.name):
        data_url = _model_data_url(sagemaker, model)
        if _ignore_missing(sagemaker.delete_model, ModelName=model):
            done(f"model {model}")
        if data_url and data_url not in data_deleted and not args.keep_model_data:
            bucket, key = split_s3_url(data_url, "ModelDataUrl")
            if is_uploaded_model_data(args.name, key):
                s3.delete_object(Bucket=bucket, Key=key)
                data_deleted.add(data_url)
                done(f"model data {data_url}")
    print(f"nothing of {args.name} is left" if deleted else f"nothing to delete: no deployment named {args.name}")
    return 0


def _delete_endpoint(sagemaker, name: str) -> bool:
    if not _ignore_missing(sagemaker.delete_endpoint, EndpointName=name):
        return False
    print(f"deleting endpoint {name} ...", flush=True)
    try:
        sagemaker.get_waiter("endpoint_deleted").wait(EndpointName=name, WaiterConfig=WAIT)
    except WaiterError as exc:
        raise DeployError(f"endpoint {name} is still there after 20 minutes: run down again later") from exc
    return True


def _stamped(sagemaker, operation: str, key: str, field: str, name: str) -> list[str]:
    found = []
    for page in sagemaker.get_paginator(operation).paginate(NameContains=name):
        found.extend(item[field] for item in page[key] if is_stamped(name, item[field]))
    return found


def _model_data_url(sagemaker, model: str) -> str | None:
    try:
        return sagemaker.describe_model(ModelName=model).get("PrimaryContainer", {}).get("ModelDataUrl")
    except ClientError as exc:
        if is_missing(exc):
            return None
        raise


def _ignore_missing(call, **kwargs) -> bool:
    """Run a delete; False if there was nothing to delete (down is safe to run twice, or after a partial up)."""
    try:
        call(**kwargs)
    except ClientError as exc:
        if is_missing(exc):
            return False
        raise
    return True

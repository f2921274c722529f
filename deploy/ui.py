"""`segserve-deploy ui`: the web UI on AWS, in front of the endpoint NAME, in one command.

Packs the Lambda (deploy/lambda_function.py, the segserve client and the page's files from web/), uploads the zip
to S3 under its SHA-256, and creates or updates the CloudFormation stack NAME-ui from deploy/template.yaml through
a change set: an HTTP API whose GET / and GET /{file} serve the page and whose POST /invocations goes to
InvokeEndpoint, all through the one Lambda. The page and /invocations share an origin, so no CORS is set up
unless --allowed-origin names other sites that may call the API. The Lambda's role may call InvokeEndpoint on
that one endpoint and write its own log group, nothing else. A run that changes nothing updates nothing. Prints
the page's URL. `segserve-deploy down --name NAME` removes the stack and its zips.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

from botocore.exceptions import ClientError

from deploy import lambda_package, stack
from deploy.aws import DeployError, is_missing, session
from deploy.naming import (
    DEPLOYMENT_TAG,
    check_name,
    default_code_bucket,
    is_ui_code_key,
    ui_code_key,
    ui_code_prefix,
    ui_stack_name,
)

TEMPLATE = Path(__file__).with_name("template.yaml")

EPILOG = """examples:
  segserve-deploy ui --name segserve                               # prints https://<api>.execute-api.<region>.../
  segserve-deploy ui --name segserve --dry-run                     # what it would upload and change; changes nothing
  segserve-deploy ui --name segserve --allowed-origin https://tools.example.com   # that site may call the API too
  segserve-deploy down --name segserve                             # the endpoint and the UI's stack

The zip goes to --bucket, by default segserve-deploy-<account>-<region> (created, private, if missing; `down`
deletes the zips but never the bucket).
"""


def register(commands, common: argparse.ArgumentParser) -> None:
    parser = commands.add_parser(
        "ui", parents=[common], help="serve the web UI for an endpoint from API Gateway + Lambda",
        description=__doc__, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--name", required=True, type=check_name,
                        help="the deployment's name (the stack is NAME-ui)")
    parser.add_argument("--endpoint-name", metavar="E", help="the SageMaker endpoint the page calls (default: NAME)")
    parser.add_argument("--allowed-origin", action="append", default=[], metavar="URL", type=check_origin,
                        help="another site allowed to call the API from a browser (CORS); repeat for more")
    parser.add_argument("--bucket", help="S3 bucket for the Lambda's zip (default: segserve-deploy-ACCOUNT-REGION)")
    parser.add_argument("--dry-run", action="store_true", help="say what would change; change nothing")
    parser.set_defaults(run=run)


def check_origin(value: str) -> str:
    """An origin as browsers send it: scheme://host[:port], nothing after it; or "*" (any site)."""
    if value == "*":
        return value
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path not in ("", "/") \
            or parts.query or parts.fragment or "," in value:
        raise argparse.ArgumentTypeError(f"{value!r}: give an origin such as https://ui.example.com (no path)")
    return f"{parts.scheme}://{parts.netloc}"


def check_endpoint_name(name: str) -> str:
    if name != name.lower():
        raise DeployError(f"endpoint name {name!r}: the Lambda's IAM policy names the endpoint by its ARN, which "
                          "SageMaker writes in lower case: deploy the endpoint with a lower-case --name")
    return name


def run(args: argparse.Namespace) -> int:
    stack_name = ui_stack_name(args.name)
    endpoint = check_endpoint_name(args.endpoint_name or args.name)
    aws = session(args)
    cloudformation, s3 = aws.client("cloudformation"), aws.client("s3")
    bucket = args.bucket or default_code_bucket(aws.client("sts").get_caller_identity()["Account"],
                                                 cloudformation.meta.region_name)
    existing = stack.describe(cloudformation, stack_name)
    if existing is not None and stack.tags(existing).get(DEPLOYMENT_TAG) != args.name:
        raise DeployError(f"stack {stack_name} exists but was not made by `segserve-deploy ui --name {args.name}` "
                          f"(no {DEPLOYMENT_TAG}={args.name} tag): refusing to change it")
    _warn_if_no_endpoint(aws.client("sagemaker"), endpoint)
    with tempfile.TemporaryDirectory() as folder:
        archive = lambda_package.build_zip(Path(folder) / "ui.zip")
        key = ui_code_key(args.name, lambda_package.digest(archive))
        size = archive.stat().st_size
        parameters = {"EndpointName": endpoint, "AllowedOrigins": ",".join(args.allowed_origin),
                      "CodeS3Bucket": bucket, "CodeS3Key": key}
        if args.dry_run:
            _plan(stack_name, existing, bucket, key, size, parameters)
            return 0
        _upload(s3, bucket, key, archive, cloudformation.meta.region_name, default=args.bucket is None)
    outcome = stack.deploy(cloudformation, stack_name, TEMPLATE.read_text(), parameters,
                           {DEPLOYMENT_TAG: args.name}, existing)
    print(f"stack {stack_name}: {outcome}" + (" (nothing to change)" if outcome == "unchanged" else ""))
    for old in _delete_other_zips(s3, bucket, args.name, keep=key):
        print(f"deleted the replaced zip s3://{bucket}/{old}")
    outputs = {o["OutputKey"]: o["OutputValue"]
               for o in stack.describe(cloudformation, stack_name).get("Outputs", [])}
    print(f"endpoint {endpoint}; CORS: {', '.join(args.allowed_origin) or 'none (same origin only)'}")
    print(f"open {outputs.get('PageUrl', '(no PageUrl output: see the stack in the CloudFormation console)')}")
    return 0


def remove(aws, name: str, done) -> None:
    """`down`'s part: the stack NAME-ui if it carries NAME's tag, then the zips `ui` uploaded for NAME."""
    if not name[:1].isalpha():
        return  # `ui` never made a stack for such a name
    cloudformation = aws.client("cloudformation")
    found = stack.describe(cloudformation, ui_stack_name(name))
    if found is None:
        return
    if stack.tags(found).get(DEPLOYMENT_TAG) != name:
        print(f"left stack {found['StackName']} alone: it has no {DEPLOYMENT_TAG}={name} tag, so `ui` did not make it")
        return
    bucket = {p["ParameterKey"]: p["ParameterValue"] for p in found.get("Parameters", [])}.get("CodeS3Bucket")
    print(f"deleting stack {found['StackName']} ...", flush=True)
    stack.delete(cloudformation, found["StackId"])
    done(f"web UI stack {found['StackName']}")
    if bucket:
        for key in _delete_other_zips(aws.client("s3"), bucket, name, keep=None):
            done(f"Lambda zip s3://{bucket}/{key}")


def _warn_if_no_endpoint(sagemaker, endpoint: str) -> None:
    try:
        sagemaker.describe_endpoint(EndpointName=endpoint)
    except ClientError as exc:
        if not is_missing(exc):
            raise
        print(f"warning: there is no endpoint {endpoint} (yet): the page will show errors until "
              f"`segserve-deploy up --name {endpoint}` has made it")


def _plan(stack_name: str, existing: dict | None, bucket: str, key: str, size: int, parameters: dict) -> None:
    action = "create" if stack.change_set_type(existing) == "CREATE" else "update (if anything changed)"
    print(f"# would upload the Lambda zip ({size:,} bytes) to s3://{bucket}/{key}")
    print(f"# would {action} stack {stack_name} from {TEMPLATE.name} with a change set:")
    for name, value in parameters.items():
        print(f"#   {name}={value}")


def _upload(s3, bucket: str, key: str, archive: Path, region: str, default: bool) -> None:
    try:
        s3.head_bucket(Bucket=bucket)
    except ClientError as exc:
        if not is_missing(exc):
            raise
        if not default:
            raise DeployError(f"--bucket {bucket}: no such bucket (create it, or leave --bucket out)") from exc
        location = {} if region == "us-east-1" else {"CreateBucketConfiguration": {"LocationConstraint": region}}
        s3.create_bucket(Bucket=bucket, **location)
        s3.put_public_access_block(Bucket=bucket, PublicAccessBlockConfiguration={
            "BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True,
            "RestrictPublicBuckets": True})
        print(f"created bucket {bucket} (private) for the Lambda's zip")
    s3.upload_file(str(archive), bucket, key)
    print(f"uploaded the Lambda zip ({archive.stat().st_size:,} bytes) to s3://{bucket}/{key}", flush=True)


def _delete_other_zips(s3, bucket: str, name: str, keep: str | None) -> list[str]:
    """Delete the zips `ui` uploaded for `name` except `keep` (the one the stack now uses); returns their keys."""
    deleted = []
    try:
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=ui_code_prefix(name)):
            for item in page.get("Contents", []):
                if item["Key"] != keep and is_ui_code_key(name, item["Key"]):
                    s3.delete_object(Bucket=bucket, Key=item["Key"])
                    deleted.append(item["Key"])
    except ClientError as exc:
        if not is_missing(exc):  # the bucket is gone: so are the zips
            raise
    return deleted

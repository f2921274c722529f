"""`segserve-deploy transform`: a batch transform job over S3 with the model that `up` deployed.

application/jsonlines: each input file holds one request per line; SageMaker splits the files at lines and sends
many lines per request (SplitType=Line, BatchStrategy=MultiRecord); each .out file has one answer per line, in order.
image/* (image/jpeg, image/png…): one image per S3 object, one request each (SingleRecord); --attributes gives the
action and its parameters, since a batch job cannot set custom attributes per request.

With --wait the .out files are read when the job ends and failed records (lines with an "error") are summarised.
Exit status: 0 every record answered, 1 the job failed, 2 the job completed but some records failed.
"""

from __future__ import annotations

import argparse
import json

from botocore.exceptions import ClientError, WaiterError

from deploy.aws import DeployError, is_missing, session, split_s3_url
from deploy.endpoint_config import check_instance_type
from deploy.naming import DEPLOYMENT_TAG, check_name, is_stamped, stamped

JSON_LINES = "application/jsonlines"
WAIT = {"Delay": 60, "MaxAttempts": 24 * 60}  # a day
SHOWN_FAILURES = 10


def register(commands, common: argparse.ArgumentParser) -> None:
    parser = commands.add_parser(
        "transform", parents=[common], help="run a batch transform job", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog='example:\n  segserve-deploy transform --name segserve --input s3://b/photos/ --output s3://b/masks/ '
               '\\\n      --content-type image/jpeg --attributes "action=langsam;text_prompt=person" --wait',
    )
    parser.add_argument("--name", required=True, type=check_name,
                        help="the deployment (as given to `up`) whose model to use")
    parser.add_argument("--input", required=True, metavar="s3://…", help="S3 prefix of the input records")
    parser.add_argument("--output", required=True, metavar="s3://…", help="S3 prefix for the .out files")
    parser.add_argument("--content-type", default=JSON_LINES,
                        help=f"{JSON_LINES} (one request per line, the default) or image/* (one image per object)")
    parser.add_argument("--attributes", metavar='"action=langsam;text_prompt=…"',
                        help="custom attributes for requests without any (required for image/*)")
    parser.add_argument("--instance-type", default="ml.g4dn.xlarge", help="(default: %(default)s)")
    parser.add_argument("--instances", type=int, default=1, help="(default: 1)")
    parser.add_argument("--max-payload-mb", type=int, default=6, metavar="MB",
                        help="largest request SageMaker sends (1-100, default: 6)")
    parser.add_argument("--timeout", type=int, default=600, metavar="SECONDS",
                        help="time limit of one request, i.e. of all the lines in it (1-3600, default: 600)")
    parser.add_argument("--wait", action="store_true", help="wait for the job and summarise failed records")
    parser.set_defaults(run=run)


def job_request(args: argparse.Namespace, job_name: str, model_name: str) -> dict:
    json_lines = args.content_type == JSON_LINES
    if not json_lines and not args.content_type.startswith("image/"):
        raise DeployError(f"--content-type must be {JSON_LINES} or image/<type>, not {args.content_type!r}")
    if not json_lines and not args.attributes:
        raise DeployError('raw images need --attributes with the action, e.g. "action=langsam;text_prompt=person"')
    if not 1 <= args.max_payload_mb <= 100 or not 1 <= args.timeout <= 3600:
        raise DeployError("--max-payload-mb must be 1-100 and --timeout 1-3600")
    split_s3_url(args.input, "--input")
    split_s3_url(args.output, "--output")
    check_instance_type(args.instance_type)
    environment = {"SEGSERVE_BATCH_TIMEOUT_S": str(args.timeout)}  # the router's limit matches SageMaker's
    if args.attributes:
        environment["SEGSERVE_DEFAULT_ATTRIBUTES"] = args.attributes
    return {
        "TransformJobName": job_name, "ModelName": model_name, "Environment": environment,
        "BatchStrategy": "MultiRecord" if json_lines else "SingleRecord", "MaxPayloadInMB": args.max_payload_mb,
        "ModelClientConfig": {"InvocationsTimeoutInSeconds": args.timeout, "InvocationsMaxRetries": 1},
        "TransformInput": {
            "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": args.input}},
            "ContentType": args.content_type, "SplitType": "Line" if json_lines else "None",
        },
        "TransformOutput": {"S3OutputPath": args.output, "Accept": JSON_LINES if json_lines else "application/json",
                            "AssembleWith": "Line" if json_lines else "None"},
        "TransformResources": {"InstanceType": args.instance_type, "InstanceCount": args.instances},
        "Tags": [{"Key": DEPLOYMENT_TAG, "Value": args.name}],
    }


def run(args: argparse.Namespace) -> int:
    aws = session(args)
    sagemaker = aws.client("sagemaker")
    job_name = stamped(args.name)
    request = job_request(args, job_name, deployed_model(sagemaker, args.name))
    sagemaker.create_transform_job(**request)
    print(f"transform job {job_name}: model {request['ModelName']}, {args.input} -> {args.output} "
          f"({request['BatchStrategy']}, {args.instance_type} x {args.instances})")
    if not args.wait:
        print(f"follow it: aws sagemaker describe-transform-job --transform-job-name {job_name}")
        return 0
    print("waiting for it to finish ...", flush=True)
    try:
        sagemaker.get_waiter("transform_job_completed_or_stopped").wait(TransformJobName=job_name, WaiterConfig=WAIT)
    except WaiterError:
        pass  # a Failed job ends the waiter too; its reason is read below
    job = sagemaker.describe_transform_job(TransformJobName=job_name)
    status = job["TransformJobStatus"]
    if status != "Completed":
        print(f"job {job_name} {status}: {job.get('FailureReason', 'no reason given')} "
              f"(logs: CloudWatch /aws/sagemaker/TransformJobs, stream {job_name}/…)")
        return 1
    records, failures = summarise(aws.client("s3"), args.output)
    print(f"job {job_name} Completed: {records} record{'' if records == 1 else 's'}, {len(failures)} failed")
    for failure in failures[:SHOWN_FAILURES]:
        print(f"  {failure}")
    if len(failures) > SHOWN_FAILURES:
        print(f"  … and {len(failures) - SHOWN_FAILURES} more")
    return 2 if failures else 0


def deployed_model(sagemaker, name: str) -> str:
    """The model the endpoint serves; without an endpoint, the newest model `up` made for the name."""
    try:
        config = sagemaker.describe_endpoint(EndpointName=name)["EndpointConfigName"]
        return sagemaker.describe_endpoint_config(EndpointConfigName=config)["ProductionVariants"][0]["ModelName"]
    except ClientError as exc:
        if not is_missing(exc):
            raise
    models = [model for page in sagemaker.get_paginator("list_models").paginate(NameContains=name)
              for model in page["Models"] if is_stamped(name, model["ModelName"])]
    if models:
        return max(models, key=lambda model: model["CreationTime"])["ModelName"]
    raise DeployError(f"no model for {name}: run `segserve-deploy up --name {name} …` first")


def summarise(s3, output: str) -> tuple[int, list[str]]:
    """Count the answers in the .out files under `output` and describe each failed one (file:line status code)."""
    bucket, prefix = split_s3_url(output, "--output")
    records, failures = 0, []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            if not item["Key"].endswith(".out"):
                continue
            body = s3.get_object(Bucket=bucket, Key=item["Key"])["Body"]
            for number, line in enumerate(body.iter_lines(), start=1):
                if not line.strip():
                    continue
                records += 1
                failure = _failure(line)
                if failure:
                    failures.append(f"{item['Key']}:{number}: {failure}")
    return records, failures


def _failure(line: bytes) -> str | None:
    try:
        answer = json.loads(line)
    except ValueError:
        return "not a JSON answer: " + line[:80].decode(errors="replace")
    error = answer.get("error") if isinstance(answer, dict) else None
    if error is None:
        return None
    if isinstance(error, dict):
        return f"{error.get('status', '?')} {error.get('code', 'error')}: {error.get('message', '')}"
    return str(error)

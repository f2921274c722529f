"""`segserve-deploy up`: create or update a SageMaker endpoint (model, endpoint config, endpoint, autoscaling)."""

from __future__ import annotations

import argparse

from deploy.aws import DeployError


def register(commands, common: argparse.ArgumentParser) -> None:
    parser = commands.add_parser(
        "up", parents=[common], help="create the endpoint, or update it with no downtime", description=__doc__,
    )
    parser.add_argument("--name", required=True, help="endpoint name; models and configs are named after it")
    parser.add_argument("--image-uri", required=True, metavar="URI", help="the ECR image (from `segserve-deploy image`)")
    parser.add_argument("--role-arn", required=True, metavar="ARN", help="SageMaker execution role")
    parser.add_argument("--model-data", required=True, metavar="DIR|s3://…",
                        help="a model store folder (packed as model.tar.gz and uploaded) or an s3:// model.tar.gz")
    parser.add_argument("--bucket", required=True, help="S3 bucket for the uploaded model data")
    parser.add_argument("--instance-type", default="ml.g4dn.xlarge", help="(default: %(default)s)")
    parser.add_argument("--instances", type=int, default=1, help="initial and minimum instance count (default: 1)")
    parser.add_argument("--max-instances", type=int, help="autoscaling maximum (default: --instances, no scaling)")
    parser.add_argument("--async-output", metavar="s3://…", help="make it an asynchronous endpoint writing here")
    parser.add_argument("--openai-secret", metavar="SECRET_ID",
                        help="Secrets Manager secret with the OpenAI key; only its id reaches the container")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    raise DeployError("not implemented yet (issue 10)")

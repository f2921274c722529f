"""`segserve-deploy transform`: a batch transform job over S3 with the model that `up` deployed."""

from __future__ import annotations

import argparse

from deploy.aws import DeployError


def register(commands, common: argparse.ArgumentParser) -> None:
    parser = commands.add_parser("transform", parents=[common], help="run a batch transform job", description=__doc__)
    parser.add_argument("--name", required=True, help="the deployment (as given to `up`) whose model to use")
    parser.add_argument("--input", required=True, metavar="s3://…", help="S3 prefix of the input records")
    parser.add_argument("--output", required=True, metavar="s3://…", help="S3 prefix for the .out files")
    parser.add_argument("--content-type", default="application/jsonlines",
                        help="application/jsonlines (one request per line) or image/* (one image per object)")
    parser.add_argument("--attributes", metavar='"action=langsam;text_prompt=…"',
                        help="default custom attributes for raw images (required for image/*)")
    parser.add_argument("--wait", action="store_true", help="wait for the job and summarise failed records")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    raise DeployError("not implemented yet (issue 10)")

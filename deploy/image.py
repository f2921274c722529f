"""`segserve-deploy image`: build the container image and push it to ECR (the repository is created if needed)."""

from __future__ import annotations

import argparse

from deploy.aws import DeployError


def register(commands, common: argparse.ArgumentParser) -> None:
    parser = commands.add_parser(
        "image", parents=[common], help="build the image and push it to ECR", description=__doc__,
        epilog="--dry-run prints the docker commands instead of running them (for machines without an engine).",
    )
    parser.add_argument("--repository", required=True, metavar="NAME", help="ECR repository name (created if missing)")
    parser.add_argument("--tag", help="image tag (default: the package version)")
    parser.add_argument("--dry-run", action="store_true", help="print the docker commands, run none of them")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    raise DeployError("not implemented yet (issue 10)")

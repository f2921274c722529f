"""`segserve-deploy down`: delete everything `up` made for a name. Safe to run twice."""

from __future__ import annotations

import argparse

from deploy.aws import DeployError


def register(commands, common: argparse.ArgumentParser) -> None:
    parser = commands.add_parser(
        "down", parents=[common], help="delete the endpoint, its configs, models and autoscaling", description=__doc__,
    )
    parser.add_argument("--name", required=True, help="the name given to `up`")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    raise DeployError("not implemented yet (issue 10)")

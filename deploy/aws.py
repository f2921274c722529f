"""The boto3 session every command uses, and the one error type the CLI turns into a message.

No endpoint URL is ever passed: boto3 reads AWS_ENDPOINT_URL (and AWS_ENDPOINT_URL_<SERVICE>) itself, so one
environment variable points every client at moto or LocalStack.
"""

from __future__ import annotations

import argparse

import boto3


class DeployError(Exception):
    """A failure the user can act on: printed as one line, exit status 1, no traceback."""


def session(args: argparse.Namespace) -> boto3.Session:
    return boto3.Session(region_name=args.region, profile_name=args.profile)

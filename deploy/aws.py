"""The boto3 session every command uses, the one error type the CLI turns into a message, and AWS error helpers.

No endpoint URL is ever passed: boto3 reads AWS_ENDPOINT_URL (and AWS_ENDPOINT_URL_<SERVICE>) itself, so one
environment variable points every client at moto or LocalStack.
"""

from __future__ import annotations

import argparse
from urllib.parse import urlparse

import boto3
from botocore.exceptions import ClientError


class DeployError(Exception):
    """A failure the user can act on: printed as one line, exit status 1, no traceback."""


def session(args: argparse.Namespace) -> boto3.Session:
    return boto3.Session(region_name=args.region, profile_name=args.profile)


def error_code(exc: ClientError) -> str:
    return exc.response.get("Error", {}).get("Code", "")


def is_missing(exc: ClientError) -> bool:
    """AWS says "not there" with a NotFound code, or (SageMaker, and moto for others) a ValidationException."""
    code = error_code(exc)
    message = exc.response.get("Error", {}).get("Message", "").lower()
    return ("NotFound" in code or code in ("404", "NoSuchKey", "NoSuchBucket")
            or (code == "ValidationException" and any(s in message for s in ("could not find", "not found"))))


def require(call, missing: str, **kwargs):
    """Make an AWS call whose "not found" is the user's mistake, said as `missing`."""
    try:
        return call(**kwargs)
    except ClientError as exc:
        if is_missing(exc):
            raise DeployError(missing) from exc
        raise


def split_s3_url(url: str, what: str) -> tuple[str, str]:
    """s3://bucket/key → (bucket, key); anything else is the user's mistake, named after the option."""
    parsed = urlparse(url)
    if parsed.scheme != "s3" or not parsed.netloc:
        raise DeployError(f"{what} must be an s3://bucket/prefix URL, not {url!r}")
    return parsed.netloc, parsed.path.lstrip("/")

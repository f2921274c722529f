"""Running segserve-deploy in this process, as a user would from a shell, and reading what it printed."""

from __future__ import annotations

from dataclasses import dataclass

from deploy.cli import main
REGION = "us-east-1"
ROLE_ARN = "arn:aws:iam::123456789012:role/segserve-sagemaker"
BUCKET = "segserve-deploy-test"
IMAGE_URI = "123456789012.dkr.ecr.us-east-1.amazonaws.com/segserve:0.1.0"


@dataclass(frozen=True)
class Run:
    status: int
    out: str
    err: str


def run_cli(capsys, *argv: str) -> Run:
    capsys.readouterr()
    status = main(list(argv))
    captured = capsys.readouterr()
    return Run(status, captured.out, captured.err)


def up_args(name: str, model_data: str, *extra: str) -> list[str]:
    return ["up", "--name", name, "--image-uri", IMAGE_URI, "--role-arn", ROLE_ARN, "--model-data", model_data,
            "--bucket", BUCKET, *extra]

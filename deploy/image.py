"""`segserve-deploy image`: build the container image and push it to ECR (the repository is created if needed).

Runs `docker build` (BuildKit, linux/amd64: SageMaker's GPU hosts are x86_64) in the checkout, logs docker in to
the registry with a token from ecr:GetAuthorizationToken (given on stdin, never on a command line) and pushes.
The last line printed is the image URI, for `segserve-deploy up --image-uri`.
"""

from __future__ import annotations

import argparse
import base64
import os
import shlex
import shutil
import subprocess
from importlib import metadata
from pathlib import Path

from botocore.exceptions import ClientError

from deploy.aws import DeployError, error_code, session

CHECKOUT = Path(__file__).resolve().parents[1]  # the Dockerfile's folder, the build context


def register(commands, common: argparse.ArgumentParser) -> None:
    parser = commands.add_parser(
        "image", parents=[common], help="build the image and push it to ECR", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="--dry-run prints the docker commands instead of running them (for machines without an engine); "
               "it creates nothing.",
    )
    parser.add_argument("--repository", required=True, metavar="NAME", help="ECR repository name (created if missing)")
    parser.add_argument("--tag", help="image tag (default: the package version and the git commit, e.g. 0.1.0-1a2b3c4)")
    parser.add_argument("--dry-run", action="store_true", help="print the docker commands, run none of them")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    docker = shutil.which("docker")
    if docker is None and not args.dry_run:
        raise DeployError("docker is not on PATH: install Docker (with BuildKit), or use --dry-run to see the commands")
    aws = session(args)
    ecr = aws.client("ecr")
    commit = _git_commit()
    tag = args.tag or default_tag(commit)
    repository_uri, exists = find_repository(ecr, aws.client("sts"), args.repository)
    if not exists:
        if args.dry_run:
            print(f"# would create ECR repository {args.repository}")
        else:
            repository_uri = create_repository(ecr, args.repository)
    image_uri = f"{repository_uri}:{tag}"
    registry = repository_uri.split("/", 1)[0]
    build = ["docker", "build", "--platform", "linux/amd64", "--build-arg", f"VERSION={_version()}",
             "--build-arg", f"VCS_REF={commit or 'unknown'}", "-t", image_uri, str(CHECKOUT)]
    login = ["docker", "login", "--username", "AWS", "--password-stdin", registry]
    push = ["docker", "push", image_uri]
    if args.dry_run:
        print(f"DOCKER_BUILDKIT=1 {shlex.join(build)}")
        print(f"aws ecr get-login-password --region {ecr.meta.region_name} | {shlex.join(login)}")
        print(shlex.join(push))
        print(image_uri)
        return 0
    _docker(build, docker)
    _docker(login, docker, stdin=registry_password(ecr))
    _docker(push, docker)
    print(image_uri)
    return 0


def default_tag(commit: str | None) -> str:
    return f"{_version()}-{commit[:7]}" if commit else _version()


def _version() -> str:
    return metadata.version("segserve")


def _git_commit() -> str | None:
    try:
        result = subprocess.run(["git", "-C", str(CHECKOUT), "rev-parse", "HEAD"], capture_output=True, text=True,
                                timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout.strip() if result.returncode == 0 else None


def find_repository(ecr, sts, name: str) -> tuple[str, bool]:
    """(repository URI, whether it exists); the URI of a missing one is built from the account and region."""
    try:
        return ecr.describe_repositories(repositoryNames=[name])["repositories"][0]["repositoryUri"], True
    except ClientError as exc:
        if error_code(exc) != "RepositoryNotFoundException":
            raise
    account = sts.get_caller_identity()["Account"]
    return f"{account}.dkr.ecr.{ecr.meta.region_name}.amazonaws.com/{name}", False


def create_repository(ecr, name: str) -> str:
    created = ecr.create_repository(repositoryName=name, imageScanningConfiguration={"scanOnPush": True},
                                    encryptionConfiguration={"encryptionType": "AES256"})
    print(f"created ECR repository {name}")
    return created["repository"]["repositoryUri"]


def registry_password(ecr) -> str:
    token = ecr.get_authorization_token()["authorizationData"][0]["authorizationToken"]
    return base64.b64decode(token).decode().partition(":")[2]


def _docker(command: list[str], docker: str, stdin: str | None = None) -> None:
    print(f"$ {shlex.join(command)}", flush=True)
    env = {**os.environ, "DOCKER_BUILDKIT": "1"}
    result = subprocess.run([docker, *command[1:]], input=stdin, text=True, env=env, check=False)
    if result.returncode != 0:
        raise DeployError(f"`{shlex.join(command[:2])}` failed with exit status {result.returncode}")

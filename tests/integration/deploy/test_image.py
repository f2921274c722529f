"""`image` against moto's ECR: --dry-run prints the docker commands and creates nothing; a real run (with a
stand-in `docker` that records its arguments and stdin) creates the repository, logs in with the registry token on
stdin, builds for linux/amd64 and pushes the URI it prints last."""

from __future__ import annotations

import base64
import json
import os
import stat

from tests.integration.deploy.cli import run_cli

REPOSITORY = "segserve-test"


def test_dry_run_prints_the_commands_and_creates_nothing(aws, capsys, monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")  # no docker needed
    result = run_cli(capsys, "image", "--repository", REPOSITORY, "--tag", "t1", "--dry-run")
    assert result.status == 0, result.err
    lines = result.out.splitlines()
    uri = f"123456789012.dkr.ecr.us-east-1.amazonaws.com/{REPOSITORY}:t1"
    assert lines[-1] == uri
    assert f"# would create ECR repository {REPOSITORY}" in lines
    assert any(line.startswith("DOCKER_BUILDKIT=1 docker build --platform linux/amd64") and f"-t {uri}" in line
               for line in lines)
    assert f"docker push {uri}" in lines
    assert any("docker login --username AWS --password-stdin 123456789012.dkr.ecr" in line for line in lines)
    assert aws.client("ecr").describe_repositories()["repositories"] == []


def test_without_docker_it_says_so_and_creates_nothing(aws, capsys, monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    result = run_cli(capsys, "image", "--repository", REPOSITORY)
    assert result.status == 1 and "docker is not on PATH" in result.err and "--dry-run" in result.err
    assert aws.client("ecr").describe_repositories()["repositories"] == []


def test_build_login_push_with_the_token_on_stdin(aws, capsys, monkeypatch, tmp_path):
    calls = tmp_path / "docker-calls.jsonl"
    docker = tmp_path / "bin" / "docker"
    docker.parent.mkdir()
    docker.write_text(f"""#!/usr/bin/env python3
import json, sys
stdin = sys.stdin.read() if "--password-stdin" in sys.argv else ""
with open({str(calls)!r}, "a") as f:
    f.write(json.dumps({{"argv": sys.argv[1:], "stdin": stdin}}) + "\\n")
""")
    docker.chmod(docker.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{docker.parent}{os.pathsep}{os.environ['PATH']}")

    result = run_cli(capsys, "image", "--repository", REPOSITORY)
    assert result.status == 0, result.err
    (repository,) = aws.client("ecr").describe_repositories()["repositories"]
    assert repository["repositoryName"] == REPOSITORY
    image_uri = result.out.splitlines()[-1]
    assert image_uri.startswith(repository["repositoryUri"] + ":0.1.0")
    build, login, push = [json.loads(line) for line in calls.read_text().splitlines()]
    assert build["argv"][:3] == ["build", "--platform", "linux/amd64"] and image_uri in build["argv"]
    token = aws.client("ecr").get_authorization_token()["authorizationData"][0]["authorizationToken"]
    password = base64.b64decode(token).decode().partition(":")[2]
    assert login["argv"][:4] == ["login", "--username", "AWS", "--password-stdin"]
    assert login["stdin"] == password and password not in json.dumps(login["argv"]) + result.out + result.err
    assert push["argv"] == ["push", image_uri]

    again = run_cli(capsys, "image", "--repository", REPOSITORY, "--tag", "second")
    assert again.status == 0 and "created ECR repository" not in again.out  # the repository is reused

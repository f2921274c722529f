"""segserve-deploy's command line: every command has --help, AWS options go before or after the command, the
console script is installed from the top-level deploy/ package, and a reader that stops early (`| head`) ends it
quietly."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from deploy.cli import COMMANDS, build_parser, main
from tests.client_helpers import point_boto3_at

COMMAND_NAMES = ["image", "up", "ui", "invoke", "transform", "down"]


def test_every_command_is_registered():
    commands = build_parser()._subparsers._group_actions[0].choices
    assert set(COMMAND_NAMES) <= set(commands)
    assert len(commands) == len(COMMANDS)


@pytest.mark.parametrize("argv", [["--help"]] + [[name, "--help"] for name in COMMAND_NAMES])
def test_help(argv, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: segserve-deploy")
    assert "--region" in out


@pytest.mark.parametrize("argv", [
    ["--region", "eu-west-1", "down", "--name", "x"],
    ["down", "--name", "x", "--region", "eu-west-1"],
    ["--region", "us-east-1", "down", "--name", "x", "--region", "eu-west-1"],
])
def test_region_before_or_after_the_command(argv):
    args = build_parser().parse_args(argv)
    assert args.region == "eu-west-1"
    assert args.profile is None


def test_console_script_is_installed():
    script = shutil.which("segserve-deploy")
    assert script, "segserve-deploy is not on PATH: `make install` installs it"
    result = subprocess.run([script, "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "segserve-deploy" in result.stdout


def test_a_reader_that_closes_early_gets_no_broken_pipe_traceback(monkeypatch, standin, container):
    """`segserve-deploy invoke ... | head -1`: an answer far larger than a pipe's buffer, its reader gone after
    one line."""
    point_boto3_at(monkeypatch, standin.url)
    answer = {"action": "ping", "status": "ready", "models": [{"name": f"model-{i}"} for i in range(20_000)]}
    container.reply = (200, json.dumps(answer).encode(), {"Content-Type": "application/json"})
    script = shutil.which("segserve-deploy")
    with subprocess.Popen([script, "invoke", "--name", "segserve", "--action", "ping"], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE) as cli:
        assert cli.stdout.readline() == b"{\n"
        cli.stdout.close()  # what head does after its lines
        stderr = cli.stderr.read().decode()
        assert cli.wait(timeout=60) == 1
    assert "Traceback" not in stderr and "BrokenPipe" not in stderr and "Exception ignored" not in stderr, stderr
    assert stderr == ""


def test_no_region_is_a_one_line_message(monkeypatch, tmp_path, capsys):
    for name in ("AWS_DEFAULT_REGION", "AWS_REGION", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    assert main(["down", "--name", "seg"]) == 1
    err = capsys.readouterr().err
    assert err == "segserve-deploy down: no AWS region: give --region or set AWS_DEFAULT_REGION\n"

"""The scripts the container image runs, checked up to the boundary of a Docker engine (there is none to build with).

- serving/container/cuda-compat.sh, run with faked driver versions.
- serving/entrypoint.sh, run from a copy of the image's layout (assembled from the Dockerfile's COPY and ENV
  lines) with a stand-in `torchserve`: what it hands TorchServe, its failure on a missing path, SIGTERM, and the
  exec of other commands. Starting the real TorchServe through the entrypoint (/ping 503 → 200, SIGTERM) is what
  tests/integration/test_serving_api.py does.

The Dockerfile itself is checked in test_dockerfile.py.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.processes import free_port, kill_process_groups, processes_mentioning
from tests.unit.dockerfile_model import REPO, RUNTIME_STAGE, runtime_files

CUDA_COMPAT_SH = REPO / "serving" / "container" / "cuda-compat.sh"


# --- serving/container/cuda-compat.sh ----------------------------------------------------------------------------

COMPAT_VERSION = "580.95.05"


@pytest.fixture
def compat(tmp_path):
    """A fake /usr/local/cuda/compat, a fake driver, and a way to run a command through cuda-compat.sh."""
    compat_dir = tmp_path / "compat"
    compat_dir.mkdir()
    (compat_dir / f"libcuda.so.{COMPAT_VERSION}").write_bytes(b"")
    (compat_dir / "libcuda.so.1").symlink_to(f"libcuda.so.{COMPAT_VERSION}")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("bash", "sed", "head", "tr", "readlink", "printenv", "env"):
        (bin_dir / tool).symlink_to(shutil.which(tool))
    version_file = tmp_path / "nvidia-version"

    def run(*command: str, driver_file: str | None = None, nvidia_smi: str | None = None):
        if driver_file is not None:
            version_file.write_text(driver_file)
        if nvidia_smi is not None:
            script = bin_dir / "nvidia-smi"
            script.write_text(f"#!/bin/sh\n{nvidia_smi}\n")
            script.chmod(0o755)
        env = {"PATH": str(bin_dir), "LD_LIBRARY_PATH": "/usr/local/nvidia/lib64",
               "SEGSERVE_CUDA_COMPAT_DIR": str(compat_dir), "SEGSERVE_NVIDIA_VERSION_FILE": str(version_file)}
        return subprocess.run(["bash", str(CUDA_COMPAT_SH), *command], env=env, capture_output=True, text=True,
                              timeout=10)

    run.compat_dir = compat_dir
    return run


def proc_version(driver: str) -> str:
    return f"NVRM version: NVIDIA UNIX x86_64 Kernel Module  {driver}  Sun May 12 19:39:15 UTC 2024\nGCC version:  gcc\n"


@pytest.mark.parametrize("driver", ["535.183.01", "550.127.05"])
def test_an_older_driver_branch_gets_the_forward_compatibility_libraries_first(compat, driver):
    result = compat("printenv", "LD_LIBRARY_PATH", driver_file=proc_version(driver))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"{compat.compat_dir}:/usr/local/nvidia/lib64"
    assert f"host driver {driver} is older than CUDA's {COMPAT_VERSION}" in result.stderr


@pytest.mark.parametrize("driver", ["580.65.06", "580.95.05", "590.44.01"])
def test_a_driver_of_the_same_branch_or_newer_is_left_alone(compat, driver):
    """Same branch, older patch included: compat libraries on a 580 kernel module would not match it."""
    result = compat("printenv", "LD_LIBRARY_PATH", driver_file=proc_version(driver))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "/usr/local/nvidia/lib64"
    assert "not needed" in result.stderr


def test_nvidia_smi_answers_when_the_proc_file_is_absent(compat):
    result = compat("printenv", "LD_LIBRARY_PATH", nvidia_smi="echo 535.183.01")
    assert result.stdout.strip().startswith(f"{compat.compat_dir}:"), result.stderr


@pytest.mark.parametrize("nvidia_smi", [None, "echo 'NVIDIA-SMI has failed' >&2; exit 9", "echo N/A"])
def test_no_visible_driver_changes_nothing(compat, nvidia_smi):
    result = compat("printenv", "LD_LIBRARY_PATH", nvidia_smi=nvidia_smi)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "/usr/local/nvidia/lib64"
    assert result.stderr == ""


def test_cuda_compat_execs_its_command_with_arguments_and_exit_status_intact(compat):
    result = compat("bash", "-c", 'printf "%s|" "$@"; exit 7', "argv0", "two words", "*", driver_file=proc_version("535.1.1"))
    assert result.returncode == 7
    assert result.stdout == "two words|*|"
    assert compat().returncode == 2  # no command: usage


# --- serving/entrypoint.sh in the image's layout --------------------------------------------------------------

FAKE_TORCHSERVE = """#!/usr/bin/env bash
# Stands in for TorchServe. --start: records how the entrypoint started it, writes its pid file where TorchServe
# does ($TMPDIR/.model_server.pid) and waits to be stopped. --stop: SIGTERMs the pid in that file.
if [[ "$1" == --stop ]]; then
  kill -TERM "$(cat "$TMPDIR/.model_server.pid")"
  exit 0
fi
record="$FAKE_TORCHSERVE_RECORD"
printf '%s\\n' "$@" > "$record.argv"
env > "$record.env"
pwd > "$record.cwd"
while [[ $# -gt 0 ]]; do [[ "$1" == --ts-config ]] && cp "$2" "$record.config"; shift; done
echo $$ > "$TMPDIR/.model_server.pid"
touch "$record.started"
exec -a "torchserve-stand-in $record" sleep 60  # bounded, should a killed test run leave it behind
"""


@dataclass
class Layout:
    """The image's files under `root` (image path /x → root/x), a model store where SageMaker mounts it."""

    base: Path  # every process of this layout names a path under it
    root: Path
    env: dict[str, str]  # the image's ENV, paths moved under root, with free ports and a stand-in torchserve
    entrypoint: list[str]  # the ENTRYPOINT after `tini --`, paths moved under root
    record: Path  # where the stand-in torchserve writes what it was given

    def path(self, image_path: str) -> Path:
        return self.root / image_path.lstrip("/")

    def recorded(self, what: str) -> Path:
        return Path(f"{self.record}.{what}")

    def start(self, *command: str) -> subprocess.Popen:
        return subprocess.Popen([*self.entrypoint, *command], env=self.env, cwd=self.root, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, start_new_session=True)


@pytest.fixture
def layout(dockerfile, tmp_path) -> Layout:
    root = tmp_path / "image"
    for image_path, copy in runtime_files(dockerfile).items():
        target = root / image_path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        if copy.from_stage is None:
            (source,) = copy.sources
            shutil.copy2(REPO / source, target)
            if copy.chmod:
                target.chmod(int(copy.chmod, 8))
        elif image_path.endswith(".jar"):
            target.write_bytes(b"PK\x05\x06" + bytes(18))  # an empty jar: the stand-in torchserve never opens it
        # /opt/venv and /opt/python: the host's venv stands in (not needed by a stand-in torchserve)
    for model in ("router", "langsam", "sam2"):
        (root / "opt/ml/model" / model).mkdir(parents=True)
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    (fake_bin / "torchserve").write_text(FAKE_TORCHSERVE)
    (fake_bin / "torchserve").chmod(0o755)

    def under_root(value: str) -> str:
        return str(root / value.lstrip("/")) if value.startswith(("/opt/", "/tmp/")) else value

    image_env = {k: under_root(v) for k, v in dockerfile.env(RUNTIME_STAGE).items() if k != "PATH"}
    record = tmp_path / "torchserve"
    env = {
        **image_env,
        "PATH": f"{fake_bin}{os.pathsep}/usr/local/bin{os.pathsep}/usr/bin{os.pathsep}/bin",
        "HOME": str(tmp_path),
        "FAKE_TORCHSERVE_RECORD": str(record),
        # Nothing else may answer on the management port: the entrypoint registers models there.
        "SAGEMAKER_BIND_TO_PORT": str(free_port()),
        "SEGSERVE_MANAGEMENT_PORT": str(free_port()),
        "SEGSERVE_METRICS_PORT": str(free_port()),
        "SEGSERVE_GRPC_PORTS": f"{free_port()},{free_port()}",
    }
    entrypoint = dockerfile.exec_form(RUNTIME_STAGE, "ENTRYPOINT")[2:]
    # The nvidia/cuda base's compat libraries are not on this host: cuda-compat.sh must pass straight through.
    env["SEGSERVE_CUDA_COMPAT_DIR"] = str(tmp_path / "no-compat")
    yield Layout(tmp_path, root, env, [under_root(p) for p in entrypoint], record)
    kill_process_groups(processes_mentioning(str(tmp_path)))


def test_the_entrypoint_chain_execs_any_other_command(layout):
    process = layout.start("bash", "-c", 'echo "hi from $$"')
    out, err = process.communicate(timeout=10)
    assert process.returncode == 0, err
    # The same pid: both scripts exec'd it, so tini's signals reach the command itself.
    assert out.strip() == f"hi from {process.pid}"
    assert not layout.recorded("started").exists()


@pytest.mark.parametrize("missing", ["router", "langsam", "sam2", "SEGSERVE_CONFIG", "SEGSERVE_PLUGINS"])
def test_the_entrypoint_names_a_missing_path_and_exits_before_starting_anything(layout, missing):
    path = (Path(layout.env["SEGSERVE_MODEL_STORE"]) / missing if missing in ("router", "langsam", "sam2")
            else Path(layout.env[missing]))
    shutil.rmtree(path) if path.is_dir() else path.unlink()
    started = time.monotonic()
    process = layout.start("serve")
    out, err = process.communicate(timeout=10)
    assert process.returncode == 1
    assert f"entrypoint: {path} is missing" in err
    assert time.monotonic() - started < 5
    assert not Path(layout.env["SEGSERVE_RUN_DIR"]).exists(), "it failed before creating the run dir"
    assert not layout.recorded("started").exists()


@pytest.mark.parametrize("workers", ["0", "two", "-1"])
def test_the_entrypoint_refuses_a_sam2_worker_count_that_is_not_a_positive_number(layout, workers):
    layout.env["SEGSERVE_WORKERS_SAM2"] = workers
    process = layout.start("serve")
    _, err = process.communicate(timeout=10)
    assert process.returncode == 1 and "SEGSERVE_WORKERS_SAM2 must be >= 1" in err


def test_a_ui_folder_without_index_html_is_refused_before_starting_anything(layout, tmp_path):
    layout.env["SEGSERVE_UI_DIR"] = str(tmp_path / "empty-ui")
    (tmp_path / "empty-ui").mkdir()
    process = layout.start("serve")
    _, err = process.communicate(timeout=10)
    assert process.returncode == 1
    assert f"entrypoint: SEGSERVE_UI_DIR={tmp_path / 'empty-ui'} has no index.html" in err
    assert not layout.recorded("started").exists()


def _started_config(layout: Layout) -> dict[str, str]:
    """The config.properties the entrypoint handed the stand-in torchserve (then stops it)."""
    process = layout.start("serve")
    try:
        deadline = time.monotonic() + 20
        while not layout.recorded("started").exists():
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "the stand-in torchserve was not started within 20 s"
            time.sleep(0.05)
        config = layout.recorded("config").read_text()
    finally:
        kill_process_groups([process.pid] + processes_mentioning(str(layout.base)))
        process.communicate(timeout=10)
    return dict(line.split("=", 1) for line in config.splitlines() if "=" in line and not line.startswith("#"))


@pytest.mark.parametrize("environment, with_sam3, expected", [
    ({}, False, 1 + 2 + (1 + 3) + 1),
    ({}, True, 1 + 2 + (1 + 3) + (1 + 2) + 1),  # the shipped configs: 11
    ({"SEGSERVE_WORKERS_SAM2": "2", "SEGSERVE_WORKERS_LANGSAM": "2"}, False, 2 + 2 + 2 * (1 + 3) + 1),
    ({"SEGSERVE_WORKERS_ROUTER": "3"}, True, 3),
], ids=["no-sam3", "shipped", "replicas", "override"])
def test_the_router_gets_a_worker_per_request_the_models_can_hold_plus_one(layout, environment, with_sam3, expected):
    """So that a request the models cannot take finds a free router worker to refuse it at once."""
    for model in ("langsam", "sam2", "sam3")[:3 if with_sam3 else 2]:
        folder = layout.path("/opt/ml/model") / model
        folder.mkdir(exist_ok=True)
        shutil.copy(REPO / "serving" / "model-config" / f"{model}.yaml", folder / f"{model}.yaml")
    layout.env.update(environment)
    assert _started_config(layout)["default_workers_per_model"] == str(expected)


@pytest.mark.parametrize("workers", ["0", "many"])
def test_the_entrypoint_refuses_a_router_worker_count_that_is_not_a_positive_number(layout, workers):
    layout.env["SEGSERVE_WORKERS_ROUTER"] = workers
    process = layout.start("serve")
    _, err = process.communicate(timeout=10)
    assert process.returncode == 1 and "SEGSERVE_WORKERS_ROUTER must be >= 1" in err


def test_serve_hands_torchserve_the_images_files_and_stops_it_on_sigterm(layout):
    run_dir = Path(layout.env["SEGSERVE_RUN_DIR"])
    assert not run_dir.exists()
    process = layout.start("serve")
    started_marker = layout.recorded("started")
    try:
        deadline = time.monotonic() + 20
        while not started_marker.exists():
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "the stand-in torchserve was not started within 20 s"
            time.sleep(0.05)
        argv = layout.recorded("argv").read_text().split("\n")[:-1]
        config = layout.recorded("config").read_text()
        env = dict(line.split("=", 1) for line in layout.recorded("env").read_text().splitlines() if "=" in line)
        cwd = layout.recorded("cwd").read_text().strip()

        model_store = layout.path("/opt/ml/model")
        assert argv == ["--start", "--foreground", "--ncs", "--ts-config", str(run_dir / "config.properties"),
                        "--model-store", str(model_store), "--log-config", str(layout.path("/opt/segserve/log4j2.xml"))]
        assert config.startswith(layout.path("/opt/segserve/config.properties").read_text())
        settings = dict(line.split("=", 1) for line in config.splitlines() if "=" in line and not line.startswith("#"))
        plugins = Path(settings["plugins_path"])
        assert plugins == layout.path("/opt/segserve/plugins") and (plugins / "segserve-plugins.jar").is_file()
        assert settings["model_store"] == str(model_store)
        assert settings["inference_address"] == f"http://0.0.0.0:{layout.env['SAGEMAKER_BIND_TO_PORT']}"
        assert settings["disable_token_authorization"] == "true" and settings["load_models"] == "router"
        assert env["SEGSERVE_REQUIRED_MODELS"] == "router,langsam,sam2"
        assert env["SEGSERVE_SAM2_MODELS"] == "sam2"  # one sam2 worker: no replicas, nothing to choose
        assert env["TMPDIR"] == str(run_dir) and cwd == str(run_dir)  # pid file and logs/ in the run dir
        assert env["HF_HUB_OFFLINE"] == "1"
        assert "SEGSERVE_UI_DIR" not in env  # the image serves no web UI (/ui/ answers 404 there)

        stop_at = time.monotonic()
        process.send_signal(signal.SIGTERM)  # what tini forwards when SageMaker stops the container
        out, _ = process.communicate(timeout=30)
        assert process.returncode == 143
        assert time.monotonic() - stop_at < 30
        assert "entrypoint: stopping TorchServe" in out
        deadline = time.monotonic() + 5  # the registering subshells notice on their next poll
        while processes_mentioning(str(layout.base)) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert processes_mentioning(str(layout.base)) == []
    finally:
        kill_process_groups([process.pid] * (process.poll() is None) + processes_mentioning(str(layout.base)))
        process.communicate(timeout=10)

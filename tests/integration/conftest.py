"""Fixtures for the live-server tests: ONE TorchServe for the test_serving_* files, started like the container.

The model store is built from the tiny random weights with serving/build_model_store.py and the repo's own
handlers, the /ping plugin with serving/plugins/build.sh, and the server is started by serving/entrypoint.sh
with every port free on 127.0.0.1 and its run dir (logs, pid file, generated config) in a temporary folder.
S3 is a moto server; http image URLs are served from this process, on 127.0.0.1. The prompt refiner's LLM is
tests/fake_llm.py on 127.0.0.1 (OPENAI_BASE_URL), its key read by the langsam worker from moto's Secrets Manager.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
import requests
import yaml

from tests.conftest import make_scene
from tests.fake_llm import FakeLlm
from tests.integration.serving import Serving, encode, http_server
from tests.processes import free_port, processes_mentioning

REPO_ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
S3_BUCKET = "segserve-test-images"
S3_KEY = "scenes/scene.png"
OPENAI_SECRET_ID = "segserve/test/openai"
LLM_TIMEOUT_S = 1.0  # the langsam model's llm.timeout_s here: a slow LLM costs the tests seconds, not minutes
READY_WITHIN_S = 240  # four workers import torch and load weights on two shared cores
ROUTER_WORKERS = 2

# Nothing from the caller's shell may change the server under test (a real AWS profile least of all).
_CONTROLLED_PREFIXES = ("AWS_", "SAGEMAKER_", "SEGSERVE_", "TS_", "OPENAI_")


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(_CONTROLLED_PREFIXES)}
    env.update(extra)
    return env


def pytest_collection_modifyitems(items):
    """Tests marked `runs_last` (stopping the shared server) run after every other live-server test."""
    last = [item for item in items if getattr(getattr(item, "function", None), "runs_last", False)]
    if not last:
        return
    rest = [item for item in items if item not in last]
    serving = [i for i, item in enumerate(rest) if item.path.name.startswith("test_serving_")]
    at = serving[-1] + 1 if serving else len(rest)
    items[:] = rest[:at] + last + rest[at:]


# --- images -------------------------------------------------------------------------------------------------


@pytest.fixture(scope="package")
def small_scene():
    return make_scene(240, 320)  # SCENE_SIZE


@pytest.fixture(scope="package")
def scene_png(small_scene) -> bytes:
    return encode(small_scene, "PNG")


@pytest.fixture(scope="package")
def scene_jpeg(small_scene) -> bytes:
    return encode(small_scene, "JPEG")


@pytest.fixture(scope="package")
def image_server(scene_png, scene_jpeg):
    """An http server on 127.0.0.1 for image_url: {"url": base, "paths": every path it was asked for}."""
    files = {"/scene.png": (scene_png, "image/png"), "/scene.jpg": (scene_jpeg, "image/jpeg")}
    requested: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            requested.append(self.path)
            body, content_type = files.get(self.path, (b"not found", "text/plain"))
            self.send_response(200 if self.path in files else 404)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    with http_server(Handler) as url:
        yield {"url": url, "paths": requested}


@pytest.fixture(scope="package")
def s3(tmp_path_factory, scene_png):
    """moto's S3 on 127.0.0.1 holding s3://S3_BUCKET/S3_KEY; yields its endpoint URL."""
    import boto3

    port = free_port()
    log = open(tmp_path_factory.mktemp("moto") / "moto.log", "wb")
    process = subprocess.Popen(
        [str(VENV_BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=clean_env(),
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, "moto_server exited"
            try:
                requests.get(endpoint + "/moto-api/", timeout=2)
                break
            except requests.ConnectionError:
                assert time.monotonic() < deadline, "moto_server did not answer within 30 s"
                time.sleep(0.2)
        client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                              aws_access_key_id="testing", aws_secret_access_key="testing")
        client.create_bucket(Bucket=S3_BUCKET)
        client.put_object(Bucket=S3_BUCKET, Key=S3_KEY, Body=scene_png, ContentType="image/png")
        yield endpoint
    finally:
        os.killpg(process.pid, 15)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, 9)
            process.wait(5)
        log.close()


@pytest.fixture(scope="package")
def fake_llm():
    """The OpenAI-compatible server the langsam model refines prompts with (tests script its replies)."""
    with FakeLlm.running() as llm:
        yield llm


@pytest.fixture(scope="package")
def openai_secret(s3, fake_llm) -> str:
    """The fake LLM's key as a Secrets Manager secret in moto, as `segserve-deploy up --openai-secret` expects."""
    import boto3

    client = boto3.client("secretsmanager", endpoint_url=s3, region_name="us-east-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing")
    client.create_secret(Name=OPENAI_SECRET_ID, SecretString=fake_llm.api_key)
    return OPENAI_SECRET_ID


# --- the server ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="package")
def plugin_dir() -> Path:
    result = subprocess.run(["bash", str(REPO_ROOT / "serving" / "plugins" / "build.sh")],
                            env={**os.environ, "PYTHON": sys.executable}, capture_output=True, text=True)
    assert result.returncode == 0, f"build.sh failed:\n{result.stdout}\n{result.stderr}"
    return REPO_ROOT / "serving" / "plugins" / "build"


@pytest.fixture(scope="package")
def model_config_dir(tmp_path_factory) -> Path:
    """serving/model-config with the changes these tests need (each file is parsed, changed, written back)."""
    target = tmp_path_factory.mktemp("model-config")
    for source in (REPO_ROOT / "serving" / "model-config").glob("*.yaml"):
        shutil.copy(source, target / source.name)

    def edit(name: str, change) -> None:
        path = target / f"{name}.yaml"
        config = yaml.safe_load(path.read_text())
        change(config)
        path.write_text(yaml.safe_dump(config, sort_keys=False))

    def router(config):
        # Two workers: one forwards a request while the other answers {"action": "ping"}; fewer
        # than production's four to spare the two cores.
        config["minWorkers"] = config["maxWorkers"] = ROUTER_WORKERS

    def langsam(config):
        config["handler"]["llm"]["timeout_s"] = LLM_TIMEOUT_S
        # each failure test there sees the LLM's own answer; the cool-down is tests/unit/test_prompt_cooldown.py's
        config["handler"]["llm"]["cooldown_s"] = 0

    edit("router", router)
    edit("langsam", langsam)
    return target


@pytest.fixture(scope="package")
def model_store(tmp_path_factory, tiny_bundle, model_config_dir) -> Path:
    store = tmp_path_factory.mktemp("model-store")
    build_store(store, tiny_bundle.sam2_checkpoint.parent, model_config_dir)
    return store


def build_store(store: Path, weights: Path, config_dir: Path, *extra: str) -> None:
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "serving" / "build_model_store.py"), "--weights", str(weights),
         "--model-store", str(store), "--model-config", str(config_dir), *extra],
        capture_output=True, text=True,
    )
    assert result.returncode == 0, f"build_model_store.py failed:\n{result.stdout}\n{result.stderr}"


@pytest.fixture(scope="package")
def server(tmp_path_factory, model_store, plugin_dir, s3, fake_llm, openai_secret) -> Serving:
    """serving/entrypoint.sh as the container runs it, watched from its start until /ping turns 200."""
    # The LLM key reaches the langsam worker only through Secrets Manager, as on SageMaker (no OPENAI_API_KEY).
    llm = {"AWS_ENDPOINT_URL_SECRETS_MANAGER": s3, "SEGSERVE_OPENAI_SECRET_ID": openai_secret,
           "OPENAI_BASE_URL": fake_llm.base_url}
    with serve(tmp_path_factory, model_store, plugin_dir, s3, **llm) as serving:
        yield serving


# The test deployment's image limits (SEGSERVE_*: the router and every model read the same). image_url tests fetch
# from an http server on 127.0.0.1: the production policy refuses loopback and every other private address (SSRF;
# tests/unit/test_image_fetch.py proves it), so this deployment opts in as one with an image server in its VPC
# would. And a cheap 413: the 320x240 test scene (76,800 pixels) fits, a 400x300 image (120,000) does not.
TEST_IMAGE_LIMITS = {"SEGSERVE_ALLOW_PRIVATE_IMAGE_URLS": "true", "SEGSERVE_MAX_PIXELS": "100000"}


@contextlib.contextmanager
def serve(tmp_path_factory, model_store: Path, plugin_dir: Path, s3: str, **extra_env: str) -> Iterator[Serving]:
    """A server from the entrypoint on free ports, healthy; stopped (and checked to leave nothing) on exit."""
    serving = start_entrypoint(
        tmp_path_factory.mktemp("run"), model_store, plugin_dir,
        AWS_ENDPOINT_URL_S3=s3,
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_EC2_METADATA_DISABLED="true",
        **TEST_IMAGE_LIMITS,
        **extra_env,
    )
    try:
        serving.startup_pings = serving.wait_healthy(READY_WITHIN_S)
        yield serving
    finally:
        serving.stop()
        left = processes_mentioning(str(serving.run_dir))
        assert not left, f"server processes left behind: {left}"


def start_entrypoint(run_dir: Path, model_store: Path, plugin_dir: Path, **env: str) -> Serving:
    """Start serving/entrypoint.sh in `run_dir` (logs, pid file, generated config) with every port free on
    127.0.0.1 and a clean environment plus `env` (also used by make bench); its clock starts now."""
    ports = {name: free_port() for name in
             ("inference", "management", "metrics", "grpc_inference", "grpc_management")}
    environment = clean_env(
        PATH=f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        SEGSERVE_MODEL_STORE=str(model_store),
        SEGSERVE_CONFIG=str(REPO_ROOT / "config.properties"),
        SEGSERVE_PLUGINS=str(plugin_dir),
        SEGSERVE_RUN_DIR=str(run_dir),
        SEGSERVE_UI_DIR=str(REPO_ROOT / "web"),  # as `make serve` does: the browser tests use this server
        SAGEMAKER_BIND_TO_PORT=str(ports["inference"]),
        SEGSERVE_MANAGEMENT_PORT=str(ports["management"]),
        SEGSERVE_METRICS_PORT=str(ports["metrics"]),
        SEGSERVE_GRPC_PORTS=f"{ports['grpc_inference']},{ports['grpc_management']}",
        **env,
    )
    with open(run_dir / "entrypoint.out", "wb") as out:
        entrypoint = subprocess.Popen(
            ["bash", str(REPO_ROOT / "serving" / "entrypoint.sh"), "serve"],
            cwd=run_dir, env=environment, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )
    return Serving(entrypoint, run_dir, model_store, ports, time.monotonic())

"""The /ping and /execution-parameters plugins (serving/plugins) inside a live TorchServe.

Builds the plugin jar with serving/plugins/build.sh, archives two stand-in models (a fast "router" with two
workers and a "slow" model whose load takes SLOW_LOAD_SECONDS) and starts TorchServe in its own process group,
with its logs, pid file and worker sockets in a temporary directory and every port free on 127.0.0.1.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.processes import free_port

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        not (shutil.which("java") and shutil.which("javac")), reason="needs java and javac (JDK 11+)"
    ),
]

REPO_ROOT = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO_ROOT / "serving" / "plugins" / "build.sh"
VENV_BIN = Path(sys.executable).parent
SLOW_LOAD_SECONDS = 3.0
ROUTER_WORKERS = 2
SAGEMAKER_LIMIT_SECONDS = 2.0  # SageMaker wants /ping answered within 2 s

# TorchServe calls a function handler's handle(None, context) once when the worker loads the model:
# sleeping there stands in for loading weights.
HANDLER_SOURCE = """\
import time

LOAD_SECONDS = {load_seconds}


def handle(data, context):
    if data is None:
        time.sleep(LOAD_SECONDS)
        return None
    return [{{"ok": True}} for _ in data]
"""

# Environment variables that must not leak from the caller's shell into a server under test.
_CONTROLLED_ENV = (
    "SEGSERVE_REQUIRED_MODELS",
    "SAGEMAKER_MAX_CONCURRENT_TRANSFORMS",
    "SAGEMAKER_BATCH_STRATEGY",
    "SAGEMAKER_MAX_PAYLOAD_IN_MB",
    "TS_CONFIG_FILE",
    "SEGSERVE_UI_DIR",
)


@dataclass(frozen=True)
class Reply:
    status: int
    content_type: str
    body: bytes
    seconds: float

    def json(self) -> dict:
        assert self.content_type.startswith("application/json"), self
        return json.loads(self.body)


@dataclass(frozen=True)
class PingSample:
    at: float  # seconds since the server process started
    reply: Reply


def _request(port: int, path: str, method: str = "GET", timeout: float = 5.0) -> Reply:
    """One request on a fresh connection, with no Content-Type header (like a health checker's GET)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    started = time.monotonic()
    try:
        conn.request(method, path)
        resp = conn.getresponse()
        body = resp.read()
        return Reply(resp.status, resp.getheader("Content-Type", ""), body, time.monotonic() - started)
    finally:
        conn.close()


@dataclass
class TorchServe:
    workdir: Path
    inference_port: int
    management_port: int
    process: subprocess.Popen
    started_at: float
    log_path: Path
    startup_pings: list[PingSample] = field(default_factory=list)

    def elapsed(self) -> float:
        return time.monotonic() - self.started_at

    def get(self, path: str, method: str = "GET") -> Reply:
        return _request(self.inference_port, path, method)

    def ping(self) -> PingSample:
        return PingSample(self.elapsed(), self.get("/ping"))

    def poll_ping(self, until, deadline_seconds: float, what: str) -> list[PingSample]:
        """/ping every 0.1 s until `until(sample)` is true; every sample taken, the last one matching."""
        samples = []
        deadline = time.monotonic() + deadline_seconds
        while True:
            assert self.process.poll() is None, f"torchserve exited:\n{self.log_tail()}"
            try:
                sample = self.ping()
            except (ConnectionError, OSError):
                sample = None  # not listening yet
            if sample is not None:
                samples.append(sample)
                if until(sample):
                    return samples
            if time.monotonic() > deadline:
                last = samples[-1].reply if samples else "no answer"
                pytest.fail(f"/ping: not {what} within {deadline_seconds} s (last: {last})\n{self.log_tail()}")
            time.sleep(0.1)

    def worker_pids(self, model: str) -> list[int]:
        reply = _request(self.management_port, f"/models/{model}")
        assert reply.status == 200, reply
        return [worker["pid"] for worker in reply.json()[0]["workers"]]

    def log_tail(self, lines: int = 40) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM the whole process group (launcher, java, workers); SIGKILL what is left after `timeout`."""
        pgid = self.process.pid  # start_new_session: the launcher leads its own group
        for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 10.0)):
            try:
                os.killpg(pgid, sig)
            except ProcessLookupError:
                break
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline:
                self.process.poll()  # reap the launcher, else its zombie keeps the group alive
                try:
                    os.killpg(pgid, 0)
                except ProcessLookupError:
                    return
                time.sleep(0.1)
        self.process.poll()


def start_torchserve(workdir: Path, model_store: Path, plugin_dir: Path, load_models: list[str], env: dict):
    inference_port, management_port = free_port(), free_port()
    config = workdir / "config.properties"
    config.write_text(
        textwrap.dedent(
            f"""\
            inference_address=http://127.0.0.1:{inference_port}
            management_address=http://127.0.0.1:{management_port}
            metrics_address=http://127.0.0.1:{free_port()}
            grpc_inference_port={free_port()}
            grpc_management_port={free_port()}
            model_store={model_store}
            plugins_path={plugin_dir}
            disable_token_authorization=true
            disable_system_metrics=true
            default_workers_per_model=1
            """
        )
        + (f"load_models={','.join(load_models)}\n" if load_models else "")
    )
    server_env = {k: v for k, v in os.environ.items() if k not in _CONTROLLED_ENV}
    # Logs go to ./logs, the pid file to $TMPDIR, worker sockets to java.io.tmpdir (set from $TEMP).
    server_env.update(TMPDIR=str(workdir), TEMP=str(workdir), **env)
    log_path = workdir / "torchserve.out"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [str(VENV_BIN / "torchserve"), "--start", "--foreground", "--ncs", "--ts-config", str(config)],
            cwd=workdir,
            env=server_env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return TorchServe(workdir, inference_port, management_port, process, time.monotonic(), log_path)


@pytest.fixture(scope="module")
def plugin_dir() -> Path:
    result = subprocess.run(
        [str(BUILD_SCRIPT)], env={**os.environ, "PYTHON": sys.executable}, capture_output=True, text=True
    )
    assert result.returncode == 0, f"build.sh failed:\n{result.stdout}\n{result.stderr}"
    jar = REPO_ROOT / "serving" / "plugins" / "build" / "segserve-plugins.jar"
    assert jar.is_file()
    return jar.parent


@pytest.fixture(scope="module")
def model_store(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("models")
    store = root / "store"
    store.mkdir()
    for name, load_seconds, workers in (("router", 0.0, ROUTER_WORKERS), ("slow", SLOW_LOAD_SECONDS, 1)):
        src = root / name
        src.mkdir()
        (src / "handler.py").write_text(HANDLER_SOURCE.format(load_seconds=load_seconds))
        (src / "model-config.yaml").write_text(f"minWorkers: {workers}\nmaxWorkers: {workers}\n")
        subprocess.run(
            [
                str(VENV_BIN / "torch-model-archiver"),
                "--model-name", name,
                "--version", "1.0",
                "--handler", str(src / "handler.py"),
                "--config-file", str(src / "model-config.yaml"),
                "--export-path", str(store),
            ],
            check=True,
            capture_output=True,
        )  # fmt: skip
    return store


@pytest.fixture(scope="module")
def server(tmp_path_factory, model_store, plugin_dir):
    """TorchServe with both models, watched from its start until /ping turns 200 (the samples are kept)."""
    env = {
        "SEGSERVE_REQUIRED_MODELS": "router, slow",
        "SAGEMAKER_BATCH_STRATEGY": "single_record",
        "SAGEMAKER_MAX_PAYLOAD_IN_MB": "20",
        # SAGEMAKER_MAX_CONCURRENT_TRANSFORMS unset: defaults to the router's worker count
    }
    ts = start_torchserve(
        tmp_path_factory.mktemp("server"), model_store, plugin_dir, ["router.mar", "slow.mar"], env
    )
    try:
        ts.startup_pings = ts.poll_ping(lambda s: s.reply.status == 200, 60, "healthy")
        yield ts
    finally:
        ts.stop()


def test_ping_is_503_until_the_slow_model_has_loaded(server):
    samples = server.startup_pings
    healthy = samples[-1]
    unhealthy = samples[:-1]
    assert unhealthy, "the first /ping that answered was already 200"
    assert all(s.reply.status == 503 for s in unhealthy), [s.reply.status for s in unhealthy]
    assert all(s.reply.json()["status"] == "Unhealthy" for s in unhealthy)
    # Seen at least once: the slow model registered (its worker started) but not loaded yet.
    assert any(
        s.reply.json()["models"]["slow"] == {"registered": True, "workers": 1, "ready_workers": 0} for s in unhealthy
    ), [s.reply.body for s in unhealthy]
    assert healthy.at >= SLOW_LOAD_SECONDS, f"healthy after {healthy.at:.2f} s, before the slow load could finish"
    assert healthy.reply.json() == {
        "status": "Healthy",
        "models": {
            "router": {"registered": True, "workers": ROUTER_WORKERS, "ready_workers": ROUTER_WORKERS},
            "slow": {"registered": True, "workers": 1, "ready_workers": 1},
        },
    }
    # /ping answered while the slow model was still loading (above), so it never waits on a model; its
    # latency against SageMaker's 2 s limit is printed, not asserted (a loaded machine is not a slow /ping).
    print(
        f"\n/ping: first answer {samples[0].at:.2f} s ({samples[0].reply.status}), "
        f"last 503 {unhealthy[-1].at:.2f} s, 200 at {healthy.at:.2f} s after start; "
        f"slowest reply {max(s.reply.seconds for s in samples) * 1000:.0f} ms "
        f"(SageMaker's limit: {SAGEMAKER_LIMIT_SECONDS:.0f} s)"
    )


def test_ping_is_503_while_a_killed_worker_reloads(server):
    (old_pid,) = server.worker_pids("slow")
    assert server.ping().reply.status == 200
    killed_at = server.elapsed()
    os.kill(old_pid, signal.SIGKILL)

    down = server.poll_ping(lambda s: s.reply.status != 200, 10, "unhealthy after the kill")[-1]
    assert down.reply.status == 503
    assert down.reply.json()["models"]["slow"]["ready_workers"] == 0
    up = server.poll_ping(lambda s: s.reply.status == 200, 30, "healthy again")[-1]
    (new_pid,) = server.worker_pids("slow")
    assert new_pid != old_pid
    assert up.at - killed_at >= SLOW_LOAD_SECONDS  # the replacement worker loaded the model again
    print(
        f"\nworker killed: /ping 503 {down.at - killed_at:.2f} s after the kill, "
        f"200 again {up.at - killed_at:.2f} s after it"
    )


def test_ping_and_execution_parameters_answer_get_only(server):
    for path in ("/ping", "/execution-parameters"):
        for method in ("POST", "PUT", "DELETE"):
            reply = server.get(path, method)
            assert reply.status == 405, (path, method, reply)
            assert "error" in reply.json()


def test_without_a_ui_folder_the_ui_is_not_served(server):
    reply = server.get("/ui/")
    assert reply.status == 404
    assert "SEGSERVE_UI_DIR is not set" in reply.json()["error"]


def test_execution_parameters_follow_the_environment(server):
    reply = server.get("/execution-parameters")
    assert reply.status == 200
    assert reply.json() == {
        "MaxConcurrentTransforms": ROUTER_WORKERS,  # unset: the entry model's (router's) worker count
        "BatchStrategy": "SINGLE_RECORD",
        "MaxPayloadInMB": 20,
    }


# Servers without models, one per environment: each costs a JVM start (~2 s).
@pytest.mark.parametrize(
    ("env", "expected"),
    [
        pytest.param(
            {},
            {"MaxConcurrentTransforms": 1, "BatchStrategy": "MULTI_RECORD", "MaxPayloadInMB": 6},
            id="all-unset",
        ),
        pytest.param(
            {
                "SEGSERVE_REQUIRED_MODELS": " , ",
                "SAGEMAKER_MAX_CONCURRENT_TRANSFORMS": "0",
                "SAGEMAKER_BATCH_STRATEGY": "sideways",
                "SAGEMAKER_MAX_PAYLOAD_IN_MB": "101",
            },
            {"MaxConcurrentTransforms": 1, "BatchStrategy": "MULTI_RECORD", "MaxPayloadInMB": 6},
            id="invalid",
        ),
        pytest.param(
            {
                "SAGEMAKER_MAX_CONCURRENT_TRANSFORMS": " 7 ",
                "SAGEMAKER_BATCH_STRATEGY": "MULTI_RECORD",
                "SAGEMAKER_MAX_PAYLOAD_IN_MB": "lots",
            },
            {"MaxConcurrentTransforms": 7, "BatchStrategy": "MULTI_RECORD", "MaxPayloadInMB": 6},
            id="concurrency-set",
        ),
    ],
)
def test_without_required_models_ping_is_a_configuration_error(tmp_path, model_store, plugin_dir, env, expected):
    ts = start_torchserve(tmp_path, model_store, plugin_dir, [], env)
    try:
        first = ts.poll_ping(lambda s: True, 30, "answering")[-1]
        assert first.reply.status == 503
        body = first.reply.json()
        assert body["status"] == "Unhealthy"
        assert "SEGSERVE_REQUIRED_MODELS is not set" in body["error"]

        reply = ts.get("/execution-parameters")
        assert reply.status == 200
        assert reply.json() == expected
    finally:
        ts.stop()

"""Faults and overload on a live endpoint, on a small server of their own (started by `make serve`, as a user would).

They kill and break workers, so they do not share the package's server: this one has 3 router workers, and
sam2 a queue of 1 (one request running, one waiting: the third at once is more than it can take) and a
`maxRetryTimeoutInSec` of 5 s, so that TorchServe gives up on a broken worker quickly. The tests run in file
order; the last one leaves sam2 broken.

The overload test keeps sam2 busy with image_url requests to a slow origin on 127.0.0.1 rather than with image
encodes, so that its outcome does not depend on how loaded the machine's CPUs are.
"""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import signal
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
import requests
import yaml

from tests.integration.conftest import REPO_ROOT, VENV_BIN, clean_env
from tests.integration.serving import (
    Serving, assert_error, b64, http_server, listening_addresses, ok_json, read_properties,
)
from tests.processes import free_port, kill_process_groups

pytestmark = pytest.mark.integration

ROUTER_WORKERS = 3
SAM2_QUEUE = 1
GIVE_UP_AFTER_S = 5
OVERLOAD_CLIENTS = 8
SLOW_ORIGIN_S = 5.0  # how long the slow image origin keeps a sam2 worker busy before failing


@pytest.fixture(scope="module")
def faults_server(tmp_path_factory, tiny_bundle, plugin_dir) -> Serving:
    """`make serve` with the tiny weights, this module's model-config, free ports and no bind address given."""
    root = tmp_path_factory.mktemp("faults")
    config_dir = root / "model-config"
    shutil.copytree(REPO_ROOT / "serving" / "model-config", config_dir)
    _edit(config_dir / "router.yaml", minWorkers=ROUTER_WORKERS, maxWorkers=ROUTER_WORKERS)
    _edit(config_dir / "sam2.yaml", jobQueueSize=SAM2_QUEUE, maxRetryTimeoutInSec=GIVE_UP_AFTER_S)
    ports = {name: free_port() for name in
             ("inference", "management", "metrics", "grpc_inference", "grpc_management")}
    run_dir, store = root / "run", root / "model-store"
    env = clean_env(
        PATH=f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        SAGEMAKER_BIND_TO_PORT=str(ports["inference"]),
        SEGSERVE_MANAGEMENT_PORT=str(ports["management"]),
        SEGSERVE_METRICS_PORT=str(ports["metrics"]),
        SEGSERVE_GRPC_PORTS=f"{ports['grpc_inference']},{ports['grpc_management']}",
        SEGSERVE_ALLOW_PRIVATE_IMAGE_URLS="true",  # the slow origin is on 127.0.0.1
    )
    weights = tiny_bundle.sam2_checkpoint.parent
    command = ["make", "-C", str(REPO_ROOT), "-o", ".venv/.installed", "serve", f"WEIGHTS={weights.name}",
               f"WEIGHTS_DIR={weights.parent}", f"MODEL_STORE={store}", f"MODEL_CONFIG={config_dir}",
               f"RUN_DIR={run_dir}"]
    with open(root / "make-serve.out", "wb") as out:
        make = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    serving = Serving(make, run_dir, store, ports, time.monotonic())
    try:
        serving.wait_healthy(240)
        yield serving
    finally:
        if make.poll() is None:
            os.killpg(make.pid, signal.SIGTERM)  # make and the entrypoint, whose trap stops TorchServe
            try:
                make.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(make.pid, signal.SIGKILL)
        kill_process_groups(serving.processes())


def _edit(path: Path, **values) -> None:
    config = yaml.safe_load(path.read_text())
    config.update(values)
    path.write_text(yaml.safe_dump(config, sort_keys=False))


def sam2_click(image: str) -> dict:
    return {"action": "sam2", "image": image, "x": 80, "y": 85, "multimask": False}


@pytest.fixture(scope="module")
def image(scene_png) -> str:
    return b64(scene_png)


@pytest.fixture(scope="module")
def slow_origin():
    """An image server on 127.0.0.1 that answers every request with a 503 after SLOW_ORIGIN_S."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            time.sleep(SLOW_ORIGIN_S)
            self.send_response(503)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    with http_server(Handler) as url:
        yield url + "/slow.png"


# --- where `make serve` listens -----------------------------------------------------------------------------


def test_make_serve_listens_on_loopback_only_by_default(faults_server):
    config = read_properties(faults_server.run_dir / "config.properties")
    assert config["inference_address"] == f"http://127.0.0.1:{faults_server.ports['inference']}"
    loopback = {ipaddress.ip_address("127.0.0.1")}
    for name, port in faults_server.ports.items():
        assert listening_addresses(port) == loopback, name  # inference too: not the network's, unlike the container


# --- a worker killed mid-request ----------------------------------------------------------------------------


def _sam2_worker(server: Serving, model: str = "sam2") -> dict:
    (worker,) = server.describe(model)["workers"]
    return worker


def _inference_lines(server: Serving, worker_id: str, model: str = "sam2") -> int:
    """How many requests the worker has started (TorchServe's worker logs one line as each arrives)."""
    log = server.run_dir / "logs" / "model_log.log"
    marker = f"W-{worker_id}-{model}_1.0-stdout MODEL_LOG - Backend received inference"
    return sum(1 for line in set(log.read_text(errors="replace").splitlines()) if marker in line)


def test_a_worker_killed_mid_request_is_503_model_restarting_then_it_serves_again(faults_server, image):
    server = faults_server
    worker = _sam2_worker(server)
    started = _inference_lines(server, worker["id"])
    answer: dict[str, requests.Response] = {}
    client = threading.Thread(target=lambda: answer.update(reply=server.invoke(sam2_click(image), timeout=60)))
    client.start()
    deadline = time.monotonic() + 60
    while _inference_lines(server, worker["id"]) == started:  # the request is in the worker's hands
        assert client.is_alive() and time.monotonic() < deadline, "the request never reached the sam2 worker"
        time.sleep(0.02)
    os.kill(worker["pid"], signal.SIGKILL)
    client.join(60)

    reply = answer["reply"]  # TorchServe said 507 "Worker died."; nothing ran out of memory
    error = assert_error(reply, 503, "model_restarting")
    assert reply.headers["Retry-After"] == str(error["retry_after_s"]) and error["retry_after_s"] >= 1
    assert "sam2" in error["message"]

    # While it reloads: /ping is 503 and a request is refused at once (not queued), with its Retry-After.
    assert server.ping().status == 503
    refused = server.invoke(sam2_click(image), timeout=60)
    assert refused.status_code == 503, refused.text
    assert refused.json()["error"]["code"] in ("not_ready", "model_restarting") and refused.headers["Retry-After"]

    pings = server.wait_healthy(120)
    assert pings[-1].body["models"]["sam2"]["ready_workers"] == 1
    assert _sam2_worker(server)["pid"] != worker["pid"]  # a new process
    body = ok_json(server.invoke(sam2_click(image), timeout=60))
    assert body["masks"]
    print(f"\nKILLED MID-REQUEST: sam2 ready again {pings[-1].at - pings[0].at:.1f} s after the first /ping 503")


def test_a_sam3_worker_killed_mid_request_is_503_model_restarting_too(faults_server, image, slow_origin):
    """As for sam2. The request fetches its image from the slow origin, so the worker is surely busy with it."""
    server = faults_server
    worker = _sam2_worker(server, "sam3")
    started = _inference_lines(server, worker["id"], "sam3")
    answer: dict[str, requests.Response] = {}
    slow = {"action": "sam3", "image_url": slow_origin, "text_prompt": "dog"}
    client = threading.Thread(target=lambda: answer.update(reply=server.invoke(slow, timeout=60)))
    client.start()
    deadline = time.monotonic() + 60
    while _inference_lines(server, worker["id"], "sam3") == started:
        assert client.is_alive() and time.monotonic() < deadline, "the request never reached the sam3 worker"
        time.sleep(0.02)
    os.kill(worker["pid"], signal.SIGKILL)
    client.join(60)
    error = assert_error(answer["reply"], 503, "model_restarting")
    assert "sam3" in error["message"] and answer["reply"].headers["Retry-After"]
    pings = server.wait_healthy(120)
    assert pings[-1].body["models"]["sam3"]["ready_workers"] == 1
    body = ok_json(server.invoke({"action": "sam3", "image": image, "text_prompt": "dog"}, timeout=60))
    assert body["action"] == "sam3" and body["mode"] == "concept"


def test_a_batch_loses_no_record_to_a_worker_killed_mid_job(faults_server, image):
    """24 JSON Lines records; the sam2 worker is SIGKILLed once a few have started: every record is answered
    (the router tries a record that met model_restarting again after its Retry-After, within the batch's time)."""
    server = faults_server
    worker = _sam2_worker(server)
    started = _inference_lines(server, worker["id"])
    body = ("\n".join(json.dumps(sam2_click(image)) for _ in range(24)) + "\n").encode()
    answer: dict[str, requests.Response] = {}
    client = threading.Thread(target=lambda: answer.update(
        reply=server.invoke(data=body, content_type="application/jsonlines", timeout=120)))
    client.start()
    deadline = time.monotonic() + 60
    while _inference_lines(server, worker["id"]) < started + 3:
        assert client.is_alive() and time.monotonic() < deadline, "the batch never got going"
        time.sleep(0.02)
    os.kill(worker["pid"], signal.SIGKILL)
    client.join(120)
    reply = answer["reply"]
    assert reply.status_code == 200, reply.text
    lines = [json.loads(line) for line in reply.text.splitlines()]
    assert len(lines) == 24
    assert all("masks" in line for line in lines), [line["error"] for line in lines if "error" in line]
    assert _sam2_worker(server)["pid"] != worker["pid"]  # it was killed, and the batch went on on its successor
    server.wait_healthy(120)


# --- more requests than the model can hold ------------------------------------------------------------------


def test_overload_is_answered_503_overloaded_at_once_not_queued(faults_server, slow_origin):
    """8 clients at once on sam2 (1 worker + a queue of 1): the model holds two (each busy SLOW_ORIGIN_S with a
    slow image_url, then a 400 image_fetch_failed); the rest are refused while those two are still being worked
    on, each with a Retry-After, and nothing else goes wrong."""
    server = faults_server
    slow_request = {"action": "sam2", "image_url": slow_origin, "x": 1, "y": 1}
    began = time.monotonic()
    results: list[tuple[float, requests.Response]] = []
    lock = threading.Lock()

    def client():
        reply = server.invoke(slow_request, timeout=120)
        with lock:
            results.append((time.monotonic() - began, reply))

    threads = [threading.Thread(target=client) for _ in range(OVERLOAD_CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(180)

    assert len(results) == OVERLOAD_CLIENTS
    worked = [at for at, reply in results if reply.status_code == 400]
    refused = [(at, reply) for at, reply in results if reply.status_code != 400]
    assert worked and refused, [reply.status_code for _, reply in results]
    for _, reply in results:
        if reply.status_code == 400:  # the model worked on it: it fetched the image
            assert_error(reply, 400, "image_fetch_failed", "image_url")
    for _, reply in refused:
        error = assert_error(reply, 503, "overloaded")
        assert reply.headers["Retry-After"] == str(error["retry_after_s"])
    # Refused while the model was still busy with what it had accepted: they did not wait for the queue.
    assert max(at for at, _ in refused) < max(worked)
    print(f"\nOVERLOAD: {OVERLOAD_CLIENTS} clients at once on sam2 (1 worker, queue {SAM2_QUEUE}, "
          f"{ROUTER_WORKERS} router workers, each request {SLOW_ORIGIN_S:.0f} s of work): {len(worked)} worked on, "
          f"the last answered at {max(worked):.2f} s; {len(refused)} x 503 overloaded, the last at "
          f"{max(at for at, _ in refused):.2f} s")


# --- TorchServe gives up restarting (last: sam2 stays broken) -----------------------------------------------


def _gave_up(server: Serving, worker_id: str) -> bool:
    """TorchServe logs a retry after each failed restart, until maxRetryTimeoutInSec has passed: then none."""
    lines = dict.fromkeys((server.run_dir / "logs" / "ts_log.log").read_text(errors="replace").splitlines())
    events = [line for line in lines if f"W-{worker_id}-sam2_1.0 " in line and
              ("Auto recovery" in line or f"Retry worker: {worker_id}" in line)]
    return bool(events) and "Auto recovery failed again" in events[-1]


def test_a_model_torchserve_gave_up_on_is_refused_at_once_and_ping_stays_503(faults_server, image):
    server = faults_server
    worker = _sam2_worker(server)
    weights = server.model_store / "sam2" / "weights"
    weights.rename(weights.with_name("weights.gone"))  # every restart now fails in initialize
    os.kill(worker["pid"], signal.SIGKILL)
    deadline, held = time.monotonic() + 180, 0
    while held < 2:  # no retry after the last failure, on two looks 1 s apart
        assert time.monotonic() < deadline, f"TorchServe kept restarting sam2\n{server.log_tail()}"
        held = held + 1 if _gave_up(server, worker["id"]) else 0
        time.sleep(1)

    ping = server.ping()
    assert ping.status == 503 and ping.body["models"]["sam2"] == {"registered": True, "workers": 1,
                                                                  "ready_workers": 0}
    # The trap: TorchServe itself still queues a request for it, and never answers.
    with pytest.raises(requests.Timeout):
        server.post("/predictions/sam2", {"action": "ping"}, timeout=3)
    # Through the router it is refused at once.
    reply = server.invoke(sam2_click(image), timeout=30)
    error = assert_error(reply, 503, "not_ready")
    assert "0 of 1" in error["message"] and reply.headers["Retry-After"] == str(error["retry_after_s"])
    assert json.loads(reply.content)["error"]["request_id"]

"""Operating a live endpoint: TorchServe's management API, new model versions, metrics, what listens where,
/execution-parameters, the router's added latency and a clean SIGTERM shutdown (last: it stops the server).
"""

from __future__ import annotations

import ipaddress
import re
import signal
import statistics
import subprocess
import time

import pytest
import requests

from tests.integration.conftest import ROUTER_WORKERS, build_store
from tests.integration.serving import b64, check_segmentation, listening_addresses, ok_json, read_properties

pytestmark = pytest.mark.integration


def runs_last(test):
    """Run after every other live-server test (see conftest.pytest_collection_modifyitems)."""
    test.runs_last = True
    return test


# --- management API -----------------------------------------------------------------------------------------


def test_management_lists_and_describes_the_models(server):
    listed = server.manage("GET", "/models")
    assert listed.status_code == 200
    assert {m["modelName"] for m in listed.json()["models"]} == {"router", "langsam", "sam2", "sam3"}

    router = server.describe("router")
    assert router["modelVersion"] == "1.0"
    assert router["loadedAtStartup"] is True  # the single startup model: /invocations resolves to it
    assert router["minWorkers"] == router["maxWorkers"] == ROUTER_WORKERS
    assert [w["status"] for w in router["workers"]] == ["READY"] * ROUTER_WORKERS
    sam2 = server.describe("sam2")
    assert sam2["loadedAtStartup"] is False  # registered by the entrypoint afterwards
    assert sam2["responseTimeout"] == 60 and sam2["batchSize"] == 1  # from serving/model-config/sam2.yaml

    missing = server.manage("GET", "/models/sam4")
    assert missing.status_code == 404
    assert missing.json()["type"] == "ModelNotFoundException"


def test_a_new_sam2_version_serves_invocations_once_it_is_the_default(server, tiny_bundle, model_config_dir,
                                                                      scene_png):
    build_store(server.model_store, tiny_bundle.sam2_checkpoint.parent, model_config_dir,
                "--models", "sam2", "--version", "2.0", "--mar")
    assert (server.model_store / "sam2.mar").is_file()

    registered = server.manage("POST", "/models?url=sam2.mar&initial_workers=1&synchronous=true")
    try:
        # TorchServe adds a version beside the existing one; the default (what /predictions/sam2 uses) stays 1.0.
        assert registered.status_code == 200, registered.text
        assert registered.json()["status"] == 'Model "sam2" Version: 2.0 registered with 1 initial workers'
        versions = server.manage("GET", "/models/sam2/all").json()
        assert sorted(v["modelVersion"] for v in versions) == ["1.0", "2.0"]
        assert server.describe("sam2")["modelVersion"] == "1.0"
        again = server.manage("POST", "/models?url=sam2.mar&initial_workers=1&synchronous=true")
        assert again.status_code == 409, again.text  # the same version twice is a conflict
        assert "already registered" in again.json()["message"]

        made_default = server.manage("PUT", "/models/sam2/2.0/set-default")
        assert made_default.status_code == 200, made_default.text
        assert made_default.json()["status"] == 'Default version successfully updated for model "sam2" to "2.0"'
        body = ok_json(server.invoke({"action": "sam2", "image": b64(scene_png), "x": 80, "y": 85,
                                      "multimask": False}))
        check_segmentation(body, "sam2", version="2.0")  # the router follows the default version
        assert server.ping().status == 200
    finally:
        server.manage("PUT", "/models/sam2/1.0/set-default")
        server.manage("DELETE", "/models/sam2/2.0")

    assert [v["modelVersion"] for v in server.manage("GET", "/models/sam2/all").json()] == ["1.0"]
    # A model answers {"action": "ping"} itself when called directly: cheap proof of which version serves.
    direct = ok_json(server.post("/predictions/sam2", {"action": "ping"}))
    assert direct["model"] == {"name": "sam2", "version": "1.0"}


# --- where things listen, metrics, batch transform parameters -------------------------------------------------


def test_management_metrics_and_grpc_listen_on_loopback_only(server):
    config = read_properties(server.run_dir / "config.properties")
    ports = server.ports
    assert config["management_address"] == f"http://127.0.0.1:{ports['management']}"
    assert config["metrics_address"] == f"http://127.0.0.1:{ports['metrics']}"
    assert config["grpc_inference_address"] == config["grpc_management_address"] == "127.0.0.1"
    assert config["inference_address"] == f"http://0.0.0.0:{ports['inference']}"  # the container's public port
    assert config["disable_token_authorization"] == "true"
    loopback = {ipaddress.ip_address("127.0.0.1")}
    for name in ("management", "metrics", "grpc_inference", "grpc_management"):
        assert listening_addresses(ports[name]) == loopback, name
    assert listening_addresses(ports["inference"]) & {ipaddress.ip_address("0.0.0.0"), ipaddress.ip_address("::")}


def _stage_times(server) -> dict[tuple[str, str], float]:
    reply = requests.get(server.metrics + "/metrics", timeout=10)
    assert reply.status_code == 200
    pattern = re.compile(r'^SegmentationStageTime\{ModelName="([^"]+)",Stage="([^"]+)",[^}]*\}\s+(\S+)$', re.M)
    return {(model, stage): float(value) for model, stage, value in pattern.findall(reply.text)}


def test_prometheus_metrics_expose_stage_times(server, scene_png):
    if ("sam2", "sam2_image_encoder") not in _stage_times(server):  # only when run on its own
        ok_json(server.invoke({"action": "sam2", "image": b64(scene_png), "x": 80, "y": 85}))
    times = _stage_times(server)
    for stage in ("load_image", "sam2_image_encoder", "sam2_mask_decoder", "encode_masks", "total"):
        assert times[("sam2", stage)] >= 0, stage
    assert times[("sam2", "sam2_image_encoder")] > 0
    assert ("router", "sam2_image_encoder") not in times  # the router only forwards


def test_the_console_has_one_line_per_request_and_no_torchserve_chatter(server, scene_png):
    """The terminal of `make serve` (and the container's CloudWatch log) reads like a web server's: one line per
    request with its action, status, time, cache and request id; TorchServe's INFO/DEBUG and [METRICS] lines
    stay in the log files."""
    encoded = ok_json(server.invoke({"action": "sam2", "image": b64(scene_png), "x": 80, "y": 85}))
    click = server.invoke({"action": "sam2", "image_id": encoded["image"]["id"], "x": 60, "y": 70})
    bad = server.invoke({"action": "sam2", "x": 1})
    assert (click.status_code, bad.status_code) == (200, 400)
    console = server.run_dir / "entrypoint.out"
    deadline = time.monotonic() + 10  # TorchServe relays a worker's lines asynchronously
    while bad.headers["x-request-id"] not in console.read_text() and time.monotonic() < deadline:
        time.sleep(0.2)
    text = console.read_text(errors="replace")
    line = r"^\d\d:\d\d:\d\d sam2 {status} \d+ ms cache={cache} id={rid}$"
    assert re.search(line.format(status=200, cache="hit", rid=click.headers["x-request-id"]), text, re.M), text[-2000:]
    assert re.search(line.format(status=400, cache="-", rid=bad.headers["x-request-id"]), text, re.M), text[-2000:]
    for chatter in ("[METRICS]", "[DEBUG", "[INFO ", "Backend received inference", "MODEL_LOG"):
        assert chatter not in text, chatter
    # ...and the files still have everything.
    model_log = (server.run_dir / "logs" / "model_log.log").read_text(errors="replace")
    assert "Backend received inference" in model_log and click.headers["x-request-id"] in model_log


def test_execution_parameters_answer_json(server):
    reply = requests.get(server.inference + "/execution-parameters", timeout=5)
    assert reply.status_code == 200
    assert reply.headers["Content-Type"].startswith("application/json")
    assert reply.json() == {
        "MaxConcurrentTransforms": ROUTER_WORKERS,  # one router worker forwards one request at a time
        "BatchStrategy": "MULTI_RECORD",
        "MaxPayloadInMB": 6,
    }


# --- the router's cost ----------------------------------------------------------------------------------------


def test_router_added_latency(server):
    """The same request, interleaved, through /invocations (router → loopback → sam2) and straight to
    /predictions/sam2. The model refuses it at validation (unknown field), so the hop is most of the cost."""
    rounds = 30
    body = {"action": "sam2", "image_id": "0" * 32, "x": 1, "y": 1, "unknown": True}
    timings: dict[str, list[float]] = {"/invocations": [], "/predictions/sam2": []}
    answers = {}
    for _ in range(rounds):
        for path, samples in timings.items():
            started = time.perf_counter()
            reply = server.post(path, body, timeout=30)
            samples.append((time.perf_counter() - started) * 1000)
            assert reply.status_code == 400, reply.text
            answers[path] = {k: v for k, v in reply.json()["error"].items() if k != "request_id"}
    assert answers["/invocations"] == answers["/predictions/sam2"]  # passed through unchanged
    assert answers["/invocations"]["field"] == "unknown"

    p50 = {path: statistics.median(samples) for path, samples in timings.items()}
    p90 = {path: statistics.quantiles(samples, n=10)[-1] for path, samples in timings.items()}
    print(
        f"\nROUTER LATENCY ({rounds} interleaved rounds, ~100 B request refused by sam2, new connection each):"
        f"\n  /invocations       p50 {p50['/invocations']:.1f} ms  p90 {p90['/invocations']:.1f} ms"
        f"\n  /predictions/sam2  p50 {p50['/predictions/sam2']:.1f} ms  p90 {p90['/predictions/sam2']:.1f} ms"
        f"\n  router added (p50 difference): {p50['/invocations'] - p50['/predictions/sam2']:.1f} ms"
    )


# --- shutdown -------------------------------------------------------------------------------------------------


@runs_last
def test_sigterm_stops_everything_within_30_s(server):
    pids = server.processes()
    assert len(pids) >= 5, pids  # launcher, java and at least router x2, langsam, sam2 workers
    started = time.monotonic()
    server.entrypoint.send_signal(signal.SIGTERM)  # what SageMaker sends; SIGKILL follows 30 s later
    try:
        code = server.entrypoint.wait(30)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the entrypoint was still running 30 s after SIGTERM\n{server.log_tail()}")
    took = time.monotonic() - started
    assert code == 143, code  # 128 + SIGTERM, from the entrypoint's trap
    deadline = time.monotonic() + 5
    while server.processes() and time.monotonic() < deadline:  # the kernel may still be reaping
        time.sleep(0.1)
    assert server.processes() == [], "TorchServe processes outlived the entrypoint"
    with pytest.raises(requests.ConnectionError):
        requests.get(server.inference + "/ping", timeout=2)
    print(f"\nSIGTERM: the entrypoint and {len(pids)} server processes were gone after {took:.1f} s")

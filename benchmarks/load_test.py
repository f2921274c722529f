"""A bounded load test of a local endpoint: N concurrent clients for at most T seconds and R requests.

The mix is sam2 clicks on a fresh image, cached clicks (the same image again by its `image_id`) and langsam
text prompts, over a few distinct images. It prints throughput, p50/p99 latency per kind, answers by status
(and error code), and the resident memory of every worker process before and after, so a cache that grows
without bound shows. Only loopback addresses are accepted; with --serve it starts the endpoint itself
(serving/entrypoint.sh, free ports on 127.0.0.1) and stops it at the end.
"""

from __future__ import annotations

import argparse
import base64
import io
import ipaddress
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import psutil
import requests
from PIL import Image

REPO_ROOT = Path(__file__).resolve().parents[1]
MODELS = ("router", "langsam", "sam2")
MAX_CLIENTS, MAX_DURATION_S, MAX_REQUESTS = 32, 900, 20_000
IMAGE_SIZE = (320, 240)
TEXT_PROMPT = "a dog. black jeans"

EXAMPLES = """examples:
  make load                                              # tiny weights, its own server, 4 clients, 60 s
  make load LOAD_ARGS="--clients 8 --duration 120"
  .venv/bin/python benchmarks/load_test.py --url http://127.0.0.1:8080   # against `make serve`
"""


@dataclass
class Results:
    started: float = field(default_factory=time.monotonic)
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    statuses: Counter = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, kind: str, seconds: float, outcome: str) -> None:
        with self.lock:
            self.statuses[f"{kind} {outcome}"] += 1
            if outcome == "200":
                self.latencies[kind].append(seconds)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, epilog=EXAMPLES,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--url", help="a running endpoint on loopback, e.g. http://127.0.0.1:8080")
    target.add_argument("--serve", type=Path, metavar="MODEL_STORE",
                        help="start serving/entrypoint.sh on this model store, on free loopback ports")
    parser.add_argument("--management", default="http://127.0.0.1:8081",
                        help="management API of --url, for worker pids and memory (default: %(default)s)")
    parser.add_argument("--clients", type=int, default=4, help=f"concurrent clients, 1-{MAX_CLIENTS} (default: 4)")
    parser.add_argument("--duration", type=float, default=60, help=f"seconds, at most {MAX_DURATION_S} (default: 60)")
    parser.add_argument("--requests", type=int, default=1000,
                        help=f"stop after this many requests, at most {MAX_REQUESTS} (default: 1000)")
    parser.add_argument("--mix", default="sam2=3,cached=5,langsam=2", type=_mix,
                        help="relative weights of the request kinds (default: %(default)s)")
    parser.add_argument("--images", type=int, default=6, help="distinct images to cycle through (default: 6)")
    parser.add_argument("--timeout", type=float, default=70, help="per-request timeout in seconds (default: 70)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if not 1 <= args.clients <= MAX_CLIENTS:
        parser.error(f"--clients must be 1-{MAX_CLIENTS}")
    if not 0 < args.duration <= MAX_DURATION_S or not 0 < args.requests <= MAX_REQUESTS:
        parser.error(f"--duration must be in (0, {MAX_DURATION_S}] and --requests in (0, {MAX_REQUESTS}]")
    for url in filter(None, (args.url, args.management if args.url else None)):
        if not _loopback(url):
            parser.error(f"{url} is not a loopback address: this load test only targets this machine")
    return args


def _mix(text: str) -> dict[str, int]:
    mix = {}
    for part in text.split(","):
        name, _, weight = part.partition("=")
        if name not in ("sam2", "cached", "langsam") or not weight.isdigit():
            raise argparse.ArgumentTypeError(f"{part!r}: expected sam2=N, cached=N or langsam=N")
        mix[name] = int(weight)
    if not any(mix.values()):
        raise argparse.ArgumentTypeError("at least one weight must be positive")
    return mix


def _loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# --- the endpoint -------------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(model_store: Path, run_dir: Path) -> tuple[subprocess.Popen, str, str]:
    ports = [_free_port() for _ in range(5)]
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
           "SEGSERVE_MODEL_STORE": str(model_store), "SEGSERVE_CONFIG": str(REPO_ROOT / "config.properties"),
           "SEGSERVE_PLUGINS": str(REPO_ROOT / "serving" / "plugins" / "build"), "SEGSERVE_RUN_DIR": str(run_dir),
           "SAGEMAKER_BIND_TO_PORT": str(ports[0]), "SEGSERVE_MANAGEMENT_PORT": str(ports[1]),
           "SEGSERVE_METRICS_PORT": str(ports[2]), "SEGSERVE_GRPC_PORTS": f"{ports[3]},{ports[4]}"}
    log = open(run_dir / "entrypoint.out", "wb")
    process = subprocess.Popen(["bash", str(REPO_ROOT / "serving" / "entrypoint.sh"), "serve"], cwd=run_dir,
                               env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    return process, f"http://127.0.0.1:{ports[0]}", f"http://127.0.0.1:{ports[1]}"


def wait_ready(url: str, process: subprocess.Popen | None, within_s: float = 600) -> float:
    started = time.monotonic()
    while time.monotonic() - started < within_s:
        if process is not None and process.poll() is not None:
            raise SystemExit(f"the endpoint exited ({process.returncode}) before it was ready")
        try:
            if requests.get(url + "/ping", timeout=5).status_code == 200:
                return time.monotonic() - started
        except requests.ConnectionError:
            pass
        time.sleep(0.5)
    raise SystemExit(f"{url}/ping was not 200 within {within_s:.0f} s")


def stop_server(process: subprocess.Popen) -> None:
    """SIGTERM as SageMaker sends it; SIGKILL the process group if it outlives 30 s."""
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)


def worker_memory(management: str) -> dict[str, list[tuple[int, float]]]:
    """model → [(pid, RSS in MiB)] of its workers, as TorchServe lists them."""
    memory = {}
    for model in MODELS:
        workers = []
        for version in requests.get(f"{management}/models/{model}", timeout=10).json():
            for worker in version.get("workers", []):
                try:
                    workers.append((worker["pid"], psutil.Process(worker["pid"]).memory_info().rss / 2**20))
                except (psutil.NoSuchProcess, KeyError):
                    workers.append((worker.get("pid", -1), float("nan")))
        memory[model] = sorted(workers)
    return memory


# --- the clients --------------------------------------------------------------------------------------------


def make_images(count: int, seed: int) -> list[str]:
    """Distinct random pictures (smooth shapes, so they compress like photos), base64 PNG."""
    rng = np.random.default_rng(seed)
    images = []
    for _ in range(count):
        width, height = IMAGE_SIZE
        yy, xx = np.mgrid[0:height, 0:width]
        pixels = np.stack([(xx * rng.uniform(0.2, 1) + yy * rng.uniform(0, 0.5)) % 256,
                           (yy * rng.uniform(0.2, 1)) % 256, np.full_like(xx, rng.integers(0, 256))], -1)
        buffer = io.BytesIO()
        Image.fromarray(pixels.astype(np.uint8)).save(buffer, format="PNG")
        images.append(base64.b64encode(buffer.getvalue()).decode())
    return images


class Client(threading.Thread):
    def __init__(self, number: int, args, url: str, images: list[str], results: Results, budget: "Budget"):
        super().__init__(name=f"client-{number}", daemon=True)
        self.args, self.url, self.images, self.results, self.budget = args, url, images, results, budget
        self.random = random.Random(args.seed * 1000 + number)
        self.session = requests.Session()
        self.known_ids: dict[int, str] = {}  # image index → image.id the endpoint answered

    def run(self) -> None:
        kinds, weights = zip(*self.args.mix.items())
        while self.budget.take():
            kind = self.random.choices(kinds, weights)[0]
            index = self.random.randrange(len(self.images))
            if kind == "cached" and index not in self.known_ids:
                kind = "sam2"  # nothing to refer to yet: this click sends the image
            self._one(kind, index)

    def _one(self, kind: str, index: int) -> None:
        width, height = IMAGE_SIZE
        click = {"x": self.random.uniform(0, width), "y": self.random.uniform(0, height), "multimask": False}
        if kind == "langsam":
            body = {"action": "langsam", "image": self.images[index], "text_prompt": TEXT_PROMPT, "max_detections": 3}
        elif kind == "cached":
            body = {"action": "sam2", "image_id": self.known_ids[index], **click}
        else:
            body = {"action": "sam2", "image": self.images[index], **click}
        started = time.monotonic()
        try:
            reply = self.session.post(self.url + "/invocations", data=json.dumps(body), timeout=self.args.timeout,
                                      headers={"Content-Type": "application/json"})
        except requests.RequestException as exc:
            self.results.add(kind, time.monotonic() - started, type(exc).__name__)
            return
        seconds = time.monotonic() - started
        outcome = str(reply.status_code)
        if reply.status_code == 200:
            self.known_ids[index] = reply.json()["image"]["id"]
        else:
            try:
                outcome += " " + reply.json()["error"]["code"]
            except (ValueError, KeyError, TypeError):
                pass
        self.results.add(kind, seconds, outcome)


class Budget:
    """Requests left and the deadline, shared by the clients: whichever runs out first stops them."""

    def __init__(self, requests_left: int, seconds: float):
        self.left, self.deadline, self.lock = requests_left, time.monotonic() + seconds, threading.Lock()

    def take(self) -> bool:
        with self.lock:
            if self.left <= 0 or time.monotonic() >= self.deadline:
                return False
            self.left -= 1
            return True


# --- the report ---------------------------------------------------------------------------------------------


def _percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def report(args, results: Results, elapsed: float, before: dict, after: dict) -> str:
    total = sum(results.statuses.values())
    ok = sum(len(v) for v in results.latencies.values())
    lines = [f"clients {args.clients}, mix {args.mix}, {args.images} images of {IMAGE_SIZE[0]}x{IMAGE_SIZE[1]}",
             f"{total} requests in {elapsed:.1f} s: {total / elapsed:.2f} req/s, {ok / elapsed:.2f} answered 200/s",
             "", "| kind | 200s | p50 s | p99 s |", "|---|---|---|---|"]
    for kind, values in sorted(results.latencies.items()):
        lines.append(f"| {kind} | {len(values)} | {_percentile(values, 50):.2f} | {_percentile(values, 99):.2f} |")
    every = [v for values in results.latencies.values() for v in values]
    lines.append(f"| all | {len(every)} | {_percentile(every, 50):.2f} | {_percentile(every, 99):.2f} |")
    lines += ["", "answers by kind and status: " + ", ".join(f"{k}: {n}" for k, n in sorted(results.statuses.items())),
              "", "| model | worker pids before → after | RSS MiB before → after |", "|---|---|---|"]
    for model in MODELS:
        pids = f"{[p for p, _ in before[model]]} → {[p for p, _ in after[model]]}"
        rss = f"{', '.join(f'{r:.0f}' for _, r in before[model])} → {', '.join(f'{r:.0f}' for _, r in after[model])}"
        lines.append(f"| {model} | {pids} | {rss} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    process = None
    with tempfile.TemporaryDirectory(prefix="segserve-load-") as run_dir:
        if args.serve:
            process, args.url, args.management = start_server(args.serve.resolve(), Path(run_dir))
        try:
            print(f"waiting for {args.url}/ping ...", flush=True)
            print(f"ready after {wait_ready(args.url, process):.0f} s", flush=True)
            images = make_images(args.images, args.seed)
            before = worker_memory(args.management)
            results, budget = Results(), Budget(args.requests, args.duration)
            clients = [Client(n, args, args.url, images, results, budget) for n in range(args.clients)]
            for client in clients:
                client.start()
            for client in clients:
                client.join(args.duration + args.timeout + 5)  # the last request may still be running
            elapsed = time.monotonic() - results.started
            after = worker_memory(args.management)
            print(report(args, results, elapsed, before, after))
        finally:
            if process is not None:
                stop_server(process)
    return 0


if __name__ == "__main__":
    sys.exit(main())

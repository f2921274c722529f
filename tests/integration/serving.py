"""Helpers for the live-server tests (test_serving_*.py): the server handle, HTTP calls, response checks.

The fixtures that start things live in conftest.py; this module only talks to what they started.
"""

from __future__ import annotations

import base64
import threading
import ipaddress
import io
import json
import os
import signal
import subprocess
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import requests
from PIL import Image

from segserve.media.masks import decode_mask_png, decode_rle
from tests.processes import kill_process_groups, processes_mentioning

JSON = "application/json"
SCENE_SIZE = (320, 240)  # width, height: small answers; the encoder costs the same at any input size


@dataclass(frozen=True)
class PingSample:
    at: float  # seconds since the entrypoint started
    status: int
    body: dict


@dataclass
class Serving:
    """A TorchServe started through serving/entrypoint.sh, and where to reach it."""

    entrypoint: subprocess.Popen
    run_dir: Path
    model_store: Path
    ports: dict[str, int]  # inference, management, metrics, grpc_inference, grpc_management
    started_at: float
    startup_pings: list[PingSample] = field(default_factory=list)

    @property
    def inference(self) -> str:
        return f"http://127.0.0.1:{self.ports['inference']}"

    @property
    def management(self) -> str:
        return f"http://127.0.0.1:{self.ports['management']}"

    @property
    def metrics(self) -> str:
        return f"http://127.0.0.1:{self.ports['metrics']}"

    def invoke(self, payload: dict | None = None, *, data: bytes | None = None, content_type: str | None = JSON,
               headers: dict | None = None, timeout: float = 120.0) -> requests.Response:
        """POST /invocations, as SageMaker's InvokeEndpoint does: a JSON object, or raw bytes of a content type."""
        return self.post("/invocations", payload, data=data, content_type=content_type, headers=headers,
                         timeout=timeout)

    def post(self, path: str, payload: dict | None = None, *, data: bytes | None = None,
             content_type: str | None = JSON, headers: dict | None = None, timeout: float = 120.0) -> requests.Response:
        body = json.dumps(payload).encode() if payload is not None else data
        sent = {"Content-Type": content_type} if content_type is not None else {}  # None: no Content-Type at all
        return requests.post(self.inference + path, data=body, timeout=timeout, headers={**sent, **(headers or {})})

    def manage(self, method: str, path: str, timeout: float = 180.0) -> requests.Response:
        return requests.request(method, self.management + path, timeout=timeout)

    def describe(self, model: str) -> dict:
        """GET /models/<model>: TorchServe's description of the model's default version."""
        reply = self.manage("GET", f"/models/{model}")
        assert reply.status_code == 200, reply.text
        (description,) = reply.json()
        return description

    def worker_pids(self, model: str) -> list[int]:
        return sorted(worker["pid"] for worker in self.describe(model)["workers"])

    def ping(self) -> PingSample:
        reply = requests.get(self.inference + "/ping", timeout=5)
        return PingSample(time.monotonic() - self.started_at, reply.status_code, reply.json())

    def wait_healthy(self, deadline_s: float) -> list[PingSample]:
        """/ping every 0.25 s until 200: every answer seen, the 200 last."""
        samples = []
        deadline = time.monotonic() + deadline_s
        while True:
            code = self.entrypoint.poll()
            assert code is None, f"the entrypoint exited ({code}):\n{self.log_tail()}"
            try:
                samples.append(self.ping())
                if samples[-1].status == 200:
                    return samples
            except requests.ConnectionError:
                pass  # not listening yet
            if time.monotonic() > deadline:
                last = samples[-1] if samples else "no answer"
                pytest.fail(f"/ping not 200 within {deadline_s} s (last: {last})\n{self.log_tail()}")
            time.sleep(0.25)

    def log_tail(self, lines: int = 60) -> str:
        parts = []
        for path in (self.run_dir / "entrypoint.out", self.run_dir / "logs" / "model_log.log"):
            if path.exists():
                parts.append(f"--- {path.name}\n" + "\n".join(path.read_text(errors="replace").splitlines()[-lines:]))
        return "\n".join(parts)

    def processes(self) -> list[int]:
        """Every process of this server (launcher, java, workers): each names the run dir in its command line."""
        return processes_mentioning(str(self.run_dir))

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM the entrypoint (as SageMaker does); SIGKILL whatever of this server outlives `timeout`."""
        if self.entrypoint.poll() is None:
            self.entrypoint.send_signal(signal.SIGTERM)
            try:
                self.entrypoint.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.entrypoint.pid, signal.SIGKILL)
                self.entrypoint.wait(10)
        kill_process_groups(self.processes())


@contextmanager
def http_server(handler: type[BaseHTTPRequestHandler]):
    """A threading HTTP server on 127.0.0.1 while the block runs; yields its base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


# --- where it listens -----------------------------------------------------------------------------------------


def read_properties(path: Path) -> dict[str, str]:
    """A .properties file as TorchServe reads it: the last value of a key wins."""
    values = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#") and "=" in line:
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


def listening_addresses(port: int) -> set[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    """The local addresses with a TCP socket listening on `port` (from /proc/net/tcp and tcp6)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, _, port_hex = local.partition(":")
            if state != "0A" or int(port_hex, 16) != port:  # 0A: LISTEN
                continue
            raw = bytes.fromhex(address)
            raw = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))  # per-word little-endian
            ip = ipaddress.ip_address(raw)
            found.add(ip.ipv4_mapped or ip if ip.version == 6 else ip)
    return found


# --- images -------------------------------------------------------------------------------------------------


def encode(pixels: np.ndarray, fmt: str) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format=fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    return buffer.getvalue()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def png_size(text: str) -> tuple[int, int]:
    """(width, height) of a base64 PNG, which must really be a PNG."""
    image = Image.open(io.BytesIO(base64.b64decode(text, validate=True)))
    assert image.format == "PNG"
    image.load()
    return image.size


# --- answers ------------------------------------------------------------------------------------------------


def ok_json(reply: requests.Response) -> dict:
    assert reply.status_code == 200, (reply.status_code, reply.text[:2000])
    assert reply.headers["Content-Type"].startswith(JSON), reply.headers
    return reply.json()


def assert_error(reply: requests.Response, status: int, code: str, field: str | None = None) -> dict:
    """The documented error shape, `{"error": {"code", "message", ...}}`, with no traceback in it."""
    assert reply.status_code == status, (reply.status_code, reply.text[:2000])
    assert reply.headers["Content-Type"].startswith(JSON), reply.headers
    body = reply.json()
    check_error_object(body, code, field)
    return body["error"]


def check_error_object(body: dict, code: str, field: str | None = None) -> None:
    assert list(body) == ["error"], body
    error = body["error"]
    assert error["code"] == code, error
    assert isinstance(error["message"], str) and error["message"], error
    if field is not None:
        assert error.get("field") == field, error
    text = json.dumps(body)
    assert "Traceback" not in text and 'File "' not in text, text


def check_segmentation(body: dict, action: str, size: tuple[int, int] = SCENE_SIZE, mask_format: str = "rle",
                       version: str = "1.0") -> list[dict]:
    """The documented response shape; every mask decoded and checked against its size, area and box."""
    width, height = size
    assert body["action"] == action
    assert body["image"]["width"] == width and body["image"]["height"] == height
    assert isinstance(body["image"]["id"], str) and body["image"]["id"]
    assert body["model"] == {"name": action, "version": version}
    assert body["timings_ms"]["total"] > 0
    assert body["masks"], "no masks"
    for entry in body["masks"]:
        assert isinstance(entry["score"], float)  # SAM2's predicted IoU
        mask = decode_mask(entry["mask"], mask_format, size)
        if mask_format == "polygons":  # polygons carry no holes: they cover at least the mask
            assert int(mask.sum()) >= entry["area"]
        else:
            assert int(mask.sum()) == entry["area"]
        if entry["area"]:
            ys, xs = np.nonzero(mask)
            assert entry["box"] == [int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1]
        if action == "langsam":
            assert isinstance(entry["label"], str)
            assert 0.0 <= entry["detector_score"] <= 1.0
            assert len(entry["detector_box"]) == 4
    return body["masks"]


def decode_mask(mask: dict, mask_format: str, size: tuple[int, int]) -> np.ndarray:
    width, height = size
    assert mask["format"] == mask_format, mask.keys()
    if mask_format == "rle":
        assert mask["size"] == [height, width]
        decoded = decode_rle({"size": mask["size"], "counts": mask["counts"]})
    elif mask_format == "png":
        decoded = decode_mask_png(base64.b64decode(mask["data"], validate=True))
    else:
        from pycocotools import mask as coco_mask

        polygons = mask["polygons"]
        assert all(len(p) >= 8 and len(p) % 2 == 0 for p in polygons), polygons
        if not polygons:
            return np.zeros((height, width), bool)
        rles = coco_mask.frPyObjects(polygons, height, width)
        decoded = coco_mask.decode(coco_mask.merge(rles)).astype(bool)
    assert decoded.shape == (height, width)
    return decoded

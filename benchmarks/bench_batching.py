"""Does TorchServe batching (batchSize / maxBatchDelay) help concurrent clicks? Measured on the live server.

The sam2 model folder is registered a second time under another name with batchSize 4 and maxBatchDelay
20 ms (the register API's values win over model-config.yaml's), both models get the same picture once, and
then CONCURRENCY clients send cached clicks at the same time, straight to /predictions/<model>. The two
models alternate, twice each, so drift hits both; the second registration is removed afterwards.
"""

from __future__ import annotations

import statistics
import threading
import time

import requests

from tests.integration.serving import b64

BATCHED = "sam2_batch4"
BATCH_SIZE, MAX_BATCH_DELAY_MS = 4, 20
CONCURRENCY, CLICKS_EACH, REPEATS = 4, 5, 2


def measure_batching(serving, image_jpeg: bytes, click: dict, progress) -> list[str]:
    """Lines for the report: per model, the p50 latency of a click under load and the clicks per second."""
    progress(f"batching: registering {BATCHED} (batchSize {BATCH_SIZE}, maxBatchDelay {MAX_BATCH_DELAY_MS} ms)")
    reply = serving.manage("POST", f"/models?url=sam2&model_name={BATCHED}&batch_size={BATCH_SIZE}"
                                   f"&max_batch_delay={MAX_BATCH_DELAY_MS}&initial_workers=1&synchronous=true",
                           timeout=600)
    if reply.status_code != 200:
        return [f"could not register {BATCHED}: {reply.status_code} {reply.text[:200]}"]
    try:
        models = {"sam2": "batchSize 1", BATCHED: f"batchSize {BATCH_SIZE}, maxBatchDelay {MAX_BATCH_DELAY_MS} ms"}
        targets = {name: _prime(serving, name, image_jpeg, click) for name in models}
        latencies: dict[str, list[float]] = {name: [] for name in models}
        rates: dict[str, list[float]] = {name: [] for name in models}
        for repeat in range(REPEATS):
            for name, payload in targets.items():
                seconds, wall = _concurrent_clicks(serving.inference + f"/predictions/{name}", payload)
                latencies[name] += seconds
                rates[name].append(len(seconds) / wall)
                progress(f"batching {repeat + 1}/{REPEATS}, {name}: {len(seconds) / wall:.2f} clicks/s, "
                         f"p50 {statistics.median(seconds) * 1000:.0f} ms")
    finally:
        serving.manage("DELETE", f"/models/{BATCHED}", timeout=120)
    return [f"{name:<12} {setting:<34} p50 {statistics.median(latencies[name]) * 1000:7.0f} ms   "
            f"{statistics.median(rates[name]):5.2f} clicks/s   ({CONCURRENCY} clients x {CLICKS_EACH} clicks)"
            for name, setting in models.items()]


def _prime(serving, model: str, image_jpeg: bytes, click: dict) -> dict:
    """The click payload for `model`: by image_id once it holds the picture, else with the picture."""
    url = serving.inference + f"/predictions/{model}"
    with_image = {**click, "image": b64(image_jpeg)}
    first = requests.post(url, json=with_image, timeout=300)
    first.raise_for_status()
    by_id = {**click, "image_id": first.json()["image"]["id"]}
    return by_id if requests.post(url, json=by_id, timeout=300).status_code == 200 else with_image


def _concurrent_clicks(url: str, payload: dict) -> tuple[list[float], float]:
    """CONCURRENCY threads, each CLICKS_EACH clicks on its own connection: every latency, and the wall time."""
    seconds: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    start_together = threading.Barrier(CONCURRENCY)

    def client():
        session = requests.Session()
        start_together.wait()
        for _ in range(CLICKS_EACH):
            start = time.perf_counter()
            reply = session.post(url, json=payload, timeout=300)
            with lock:
                seconds.append(time.perf_counter() - start)
                if reply.status_code != 200:
                    errors.append(f"{reply.status_code} {reply.text[:200]}")

    threads = [threading.Thread(target=client) for _ in range(CONCURRENCY)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise RuntimeError(f"{len(errors)} clicks failed under concurrency, e.g. {errors[0]}")
    return seconds, time.perf_counter() - started

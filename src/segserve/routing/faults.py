"""TorchServe's own answers to a forwarded request, turned into honest errors with a Retry-After.

TorchServe 0.12's statuses mislead when read alone (pytorch/serve v0.12.0, WorkerThread/RestJob/ApiUtils):
- a worker that dies mid-request answers "Worker died." with 507 when it was SIGKILLed (exit 137 → 413 →
  507) and with 500 on any other exit or a response timeout: the model is restarting, nothing ran out of memory;
- a full job queue and a model with no worker at all both answer 503 "... has no worker to serve inference
  request ...": which one it was is read from the model's workers;
- an unregistered model is 404 ModelNotFoundException (the entrypoint registers langsam and sam2 after start);
- 507 "Out of resources" is the Python side's MemoryError / CUDA error: a real out-of-memory. (Our own
  handlers answer an OOM themselves, in our error shape, which the router passes through untouched.)

TorchServe also stops restarting a worker after `maxRetryTimeoutInSec` of failed restarts, yet keeps
queueing requests for it, which then hang. `WorkerStates` lets the router refuse such requests instead: a
model that has workers but none loaded gets 503 `not_ready`. The management API is asked only when there is
a reason to doubt a model (on a GPU host every describe runs `nvidia-smi`): after a fault, until the model is
seen ready again, and when a forwarded request has had no answer for a while (LoopbackClient's `on_slow`).
A healthy model's requests are forwarded without a describe.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass

from segserve.contract.errors import ModelRestarting, NotReady, OutOfMemory, Overloaded, PayloadTooLarge, ServiceError
from segserve.contract.wire import Reply

WORKER_DIED = "Worker died."
NO_WORKER = "has no worker to serve inference request"
OUT_OF_RESOURCES = "Out of resources"

# model name → TorchServe's description of it (GET /models/<name>), or None if unknown / not registered
Describe = Callable[[str], list | None]


@dataclass(frozen=True)
class RetryAfter:
    """Seconds a client should wait before retrying, by cause (the Retry-After header and `retry_after_s`)."""

    restart_s: int = 5  # a worker (re)loading its weights; TorchServe retries after 1, 1, 2, 3, 5... s
    overload_s: int = 1  # a full queue drains at the models' pace


@dataclass(frozen=True)
class Workers:
    """One model's workers as TorchServe describes them: how many, and how many have loaded their model."""

    total: int
    ready: int


class WorkerStates:
    """Each model's workers, from the management API, remembered for `ttl_s` (one describe per model per
    `ttl_s` per router worker at most), and the models in doubt: those that failed and have not been seen
    with a loaded worker since."""

    def __init__(self, describe: Describe, ttl_s: float = 1.0, clock: Callable[[], float] = time.monotonic):
        self.describe = describe
        self.ttl_s = ttl_s
        self.clock = clock
        self._seen: dict[str, tuple[float, Workers | None]] = {}
        self._doubted: set[str] = set()

    def get(self, model: str, fresh: bool = False) -> Workers | None:
        """None when TorchServe could not say (management API unreachable, model not registered)."""
        now = self.clock()
        seen = self._seen.get(model)
        if fresh or seen is None or now - seen[0] >= self.ttl_s:
            seen = (now, _workers(self.describe(model)))
            self._seen[model] = seen
        workers = seen[1]
        if workers is not None and workers.ready > 0:
            self._doubted.discard(model)
        else:
            self._doubted.add(model)
        return workers

    def doubted(self, model: str) -> bool:
        """True after a fault of `model` (or a look that found no loaded worker) until it is seen ready."""
        return model in self._doubted

    def forget(self, model: str) -> None:
        """After a fault the view is stale: the next `get` asks TorchServe again, and until a look finds a
        loaded worker every request to the model looks first."""
        self._seen.pop(model, None)
        self._doubted.add(model)


def _workers(description: list | None) -> Workers | None:
    if not description:
        return None
    workers = [w for version in description[:1] for w in version.get("workers", [])]  # the default version
    return Workers(len(workers), sum(1 for w in workers if w.get("status") == "READY"))


def no_ready_worker(model: str, workers: Workers, retry: RetryAfter) -> NotReady:
    state = "has no worker" if workers.total == 0 else f"has no loaded worker (0 of {workers.total})"
    return NotReady(f"model {model!r} {state}: it is starting, restarting or failing to load; "
                    f"retry after {retry.restart_s} s", retry.restart_s)


def torchserve_error(model: str, response: Reply, states: WorkerStates, retry: RetryAfter) -> ServiceError:
    """A TorchServe error (not in our error shape) for a request forwarded to `model`, as the client's error."""
    message = _message(response.body)
    if WORKER_DIED in message:
        return ModelRestarting(
            f"model {model!r} stopped while serving this request (its worker process died or passed its "
            f"response timeout) and is restarting; retry after {retry.restart_s} s", retry.restart_s)
    if response.status == 404:
        return NotReady(f"model {model!r} is not registered yet; retry after {retry.restart_s} s", retry.restart_s)
    if response.status == 503 and NO_WORKER in message:
        workers = states.get(model, fresh=True)
        if workers is not None and workers.total > 0 and workers.ready > 0:
            return Overloaded(f"model {model!r} is busy: its queue is full; retry after {retry.overload_s} s",
                              retry.overload_s)
        if workers is not None:
            return no_ready_worker(model, workers, retry)
        return NotReady(f"model {model!r} is not ready; retry after {retry.restart_s} s", retry.restart_s)
    if response.status == 507 and OUT_OF_RESOURCES in message:
        return OutOfMemory(f"model {model!r} ran out of memory: try a smaller image or fewer detections")
    if response.status == 413:
        return PayloadTooLarge(f"model {model!r} refused the request as too large")
    # e.g. 503 "Prediction failed" (a handler raised): a bug on our side, whatever TorchServe's status says.
    return ServiceError(f"model {model!r} failed (TorchServe answered {response.status}); the log has the details")


def _message(body: bytes) -> str:
    """TorchServe's error body: {"code": N, "type": "...Exception", "message": "..."}."""
    try:
        value = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return ""
    message = value.get("message") if isinstance(value, dict) else None
    return message if isinstance(message, str) else ""

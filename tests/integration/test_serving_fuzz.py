"""Live fuzzing from docs/openapi.yaml: generated requests, valid and not, against the shared TorchServe.

Each answer must be one the document describes (status, content type, body schema, with unknown answer fields
refused), no 5xx but a deliberate 503 or 507, each within a per-request timeout (no hang), and no worker may
restart (the same worker pids afterwards). `make test` sends SEGSERVE_FUZZ_REQUESTS (default 1,000), the same
ones every run; `make fuzz` sends more, different ones each run (SEGSERVE_FUZZ_EXPLORE=1).
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from dataclasses import dataclass, field

import pytest
import requests
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.specs.openapi.checks import (
    content_type_conformance, response_headers_conformance, response_schema_conformance, status_code_conformance,
)

from tests.conftest import make_scene
from tests.integration.conftest import S3_BUCKET
from tests.integration.fuzzing import cases, load_operations
from tests.integration.serving import SCENE_SIZE, encode

pytestmark = pytest.mark.integration

FUZZ_REQUESTS = int(os.environ.get("SEGSERVE_FUZZ_REQUESTS", "1000"))
# `make test` sends the same requests every run (a landing is never blocked by luck); `make fuzz` explores.
EXPLORE = os.environ.get("SEGSERVE_FUZZ_EXPLORE") == "1"
REQUEST_TIMEOUT_S = 60.0  # SageMaker's own limit for an answer; a hang fails the run here
MODELS = ("router", "langsam", "sam2")
DELIBERATE_5XX = (503, 507)
# Its own picture (a seed no other test uses), so what the fuzz run leaves in the embedding cache is its own.
FUZZ_IMAGE = encode(make_scene(SCENE_SIZE[1], SCENE_SIZE[0], seed=9001), "PNG")
CHECKS = [status_code_conformance, content_type_conformance, response_headers_conformance,
          response_schema_conformance]


def _failing_urls(image_server: dict) -> list[str]:
    """Image URLs on this machine that fail cheaply: a 404, a missing S3 key, a closed port."""
    return [f"{image_server['url']}/missing.png", f"s3://{S3_BUCKET}/missing-key", "https://127.0.0.1:1/x.png"]


def _segmentations(response) -> int:
    """Answers with masks in a 200: one for a JSON answer, one per such line of a JSON Lines batch."""
    if response.status_code != 200:
        return 0
    found = 0
    for line in response.content.splitlines():
        try:
            answer = json.loads(line)
        except ValueError:
            continue
        found += isinstance(answer, dict) and "masks" in answer
    return found


@dataclass
class FuzzRun:
    statuses: Counter = field(default_factory=Counter)  # "POST /invocations 400" → count
    bodies: Counter = field(default_factory=Counter)  # request media type → count
    segmented: int = 0  # answers with masks
    model_seconds: float = 0.0  # spent on the requests that segmented
    slowest_s: float = 0.0

    def record(self, case, response, seconds: float) -> None:
        self.statuses[f"{case.operation.label} {response.status_code}"] += 1
        self.bodies[case.media_type] += 1
        self.slowest_s = max(self.slowest_s, seconds)
        answers = _segmentations(response)
        self.segmented += answers
        self.model_seconds += seconds if answers else 0.0

    def summary(self) -> str:
        statuses = ", ".join(f"{key}: {count}" for key, count in sorted(self.statuses.items()))
        return (f"fuzz: {sum(self.statuses.values())} requests, {self.segmented} answers with masks (in "
                f"{self.model_seconds:.0f} s), slowest {self.slowest_s:.1f} s; {statuses}; bodies: {dict(self.bodies)}")


def test_generated_requests_get_documented_answers_and_cost_no_worker(server, image_server):
    pids_before = {model: server.worker_pids(model) for model in MODELS}
    run = FuzzRun()
    session = requests.Session()

    @settings(max_examples=FUZZ_REQUESTS, deadline=None, database=None, phases=[Phase.generate],
              derandomize=not EXPLORE, suppress_health_check=list(HealthCheck))
    @given(cases(load_operations(), _failing_urls(image_server), FUZZ_IMAGE, SCENE_SIZE))
    def send(case):
        started = time.monotonic()
        response = case.call(base_url=server.inference, session=session, timeout=REQUEST_TIMEOUT_S)
        run.record(case, response, time.monotonic() - started)
        assert response.status_code < 500 or response.status_code in DELIBERATE_5XX, (
            response.status_code, response.text[:500], case.as_curl_command()[:1000])
        case.validate_response(response, checks=CHECKS)

    send()
    print("\n" + run.summary())
    assert sum(run.statuses.values()) >= FUZZ_REQUESTS
    assert run.segmented > 0, "no generated request was segmented: the run tested only refusals"
    assert {model: server.worker_pids(model) for model in MODELS} == pids_before, "a worker restarted"

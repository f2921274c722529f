"""The web UI the way AWS serves it, end to end on loopback: Chromium → an API Gateway HTTP API stand-in (the
template's routes, payload format 2.0; api_gateway.py) → deploy/lambda_function.py in this process (the page's
files from the repo's web/, POST /invocations to InvokeEndpoint) → the SageMaker-runtime stand-in → the live
TorchServe. What the SageMaker side saw is recorded where the stand-in calls the container, so the session ids
are checked on the wire, not taken from the page."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from playwright.sync_api import expect

from deploy import lambda_function
from segserve.client import standin as runtime_standin
from segserve.client.standin import StandInConfig
from tests.client_helpers import point_boto3_at, running_standin
from tests.conftest import make_scene
from tests.integration.api_gateway import HttpApiStandIn, template_routes
from tests.integration.browser import UiPage
from tests.integration.serving import encode
from tests.integration.test_serving_web_ui import browser  # noqa: F401 (fixture)

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
SESSION = "x-amzn-sagemaker-session-id"


class ContainerLog:
    """Every call the SageMaker-runtime stand-in makes to the container: what it forwarded, what came back."""

    def __init__(self):
        self.calls: list[dict] = []

    def wrap(self, call):
        def recording(config, body, headers):
            answer = call(config, body, headers)
            self.calls.append({"headers": {k.lower(): v for k, v in headers.items()}, "body": json.loads(body),
                               "status": answer.status, "answer_headers": answer.headers,
                               "answer": json.loads(answer.body) if answer.status == 200 else None})
            return answer
        return recording

    def requests(self, **fields) -> list[dict]:
        """The calls whose body has these fields (pings aside)."""
        return [c for c in self.calls if c["body"].get("action") != "ping"
                and all(c["body"].get(k) == v for k, v in fields.items())]

    def wait_for_close(self, session_id: str, timeout_s: float = 20.0) -> dict:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for call in self.calls:
                if call["body"] == {"requestType": "CLOSE"} and call["headers"].get(SESSION) == session_id:
                    return call
            time.sleep(0.1)
        raise AssertionError(f"no CLOSE of session {session_id} reached the container: {self.calls}")


@pytest.fixture
def aws_path(server, monkeypatch):
    """The page's origin: API Gateway → Lambda → SageMaker runtime → TorchServe; and the container's log."""
    log = ContainerLog()
    monkeypatch.setattr(runtime_standin, "call_container", log.wrap(runtime_standin.call_container))
    with running_standin(StandInConfig(server.inference, ("segserve",))) as runtime:
        point_boto3_at(monkeypatch, runtime.url)
        monkeypatch.setenv("ENDPOINT_NAME", "segserve")
        monkeypatch.setenv("UI_DIR", str(REPO / "web"))
        monkeypatch.delenv("ALLOWED_ORIGINS", raising=False)  # same origin: the stack needs no CORS
        gateway = HttpApiStandIn(lambda_function.lambda_handler, template_routes())
        try:
            yield gateway, log
        finally:
            gateway.close()


@pytest.fixture
def pictures(tmp_path):
    """Two pictures no other test sends: the first request about each must be the one that encodes it."""
    paths = []
    for seed in (14, 15):
        path = tmp_path / f"aws-{seed}.png"
        path.write_bytes(encode(make_scene(240, 320, seed=seed), "PNG"))
        paths.append(path)
    return paths


def test_the_page_through_api_gateway_and_the_lambda_keeps_its_clicks_in_one_session(browser, aws_path,  # noqa: F811
                                                                                       pictures):
    gateway, container = aws_path
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    ui = UiPage(context.new_page(), gateway.url + "/")
    try:
        ui.open()  # the health pill is "ready": main.js ran, and its ping went through the Lambda
        assert ui.page.url == gateway.url + "/"
        pages = {path: status for method, path, status in gateway.calls if method == "GET"}
        assert pages["/"] == 200 and pages["/js/main.js"] == 200 and pages["/app.css"] == 200, pages
        assert pages["/js/sticky-session.js"] == 200 and all(s in (200, 304) for s in pages.values()), pages
        assert ("POST", "/invocations", 200) in gateway.calls  # the page's default endpoint is the API's route

        ui.upload(pictures[0])
        ui.segment_text("red square", max_detections=3)
        ui.page.click("#tab-click")
        ui.click_image(80, 84)
        ui.click_image(230, 160, button="right")
        text, first, second = ui.exchanges
        assert [e.status for e in ui.exchanges] == [200, 200, 200], ui.exchanges
        assert text.action == "langsam" and len(text.body["masks"]) == 3
        assert "image_id" in first.request and "image_id" in second.request

        # On the wire, as the container got it: the text request opened the session, both clicks named it.
        (opened,) = container.requests(action="langsam")
        assert opened["headers"][SESSION] == "NEW_SESSION" and "image" in opened["body"]
        session_id, expires = opened["answer_headers"]["x-amzn-sagemaker-new-session-id"].split("; Expires=")
        assert len(session_id) == 32 and expires.endswith("Z")
        clicks = container.requests(action="sam2")
        assert [c["headers"].get(SESSION) for c in clicks] == [session_id, session_id]
        assert [c["body"]["image_id"] for c in clicks] == [text.body["image"]["id"]] * 2
        assert all(SESSION not in c["headers"] for c in container.calls if c["body"].get("action") == "ping")

        # A fresh picture: the text request ran the encoder; the second click reused it.
        assert "sam2_image_encoder" in opened["answer"]["timings_ms"], opened["answer"]["timings_ms"]
        hit = clicks[1]["answer"]
        assert hit["cache"] == "hit" and "sam2_image_encoder" not in hit["timings_ms"], hit
        assert second.body["cache"] == "hit"  # and the page got that same answer back through the Lambda
        log = ui.page.locator("#request-log tbody tr")
        expect(log.first).to_contain_text("image_id · session")
        expect(log.first).to_contain_text("cache hit, encoder skipped")
        expect(log.nth(2)).to_contain_text("image · new session")
        ui.page.locator("details:has(#request-log) > summary").click()
        ui.screenshot("through-api-gateway")  # docs/images/ui-through-api-gateway.png

        # Another picture closes the session (its CLOSE answered with Closed-Session-Id) and opens its own ...
        ui.upload(pictures[1])
        closed = container.wait_for_close(session_id)
        assert closed["status"] == 200 and closed["answer_headers"]["x-amzn-sagemaker-closed-session-id"] == session_id
        ui.click_image(80, 84)
        (reopened,) = [c for c in container.requests(action="sam2") if "image" in c["body"]]
        assert reopened["headers"][SESSION] == "NEW_SESSION"
        new_id = reopened["answer_headers"]["x-amzn-sagemaker-new-session-id"].split(";")[0]
        assert new_id != session_id
        # ... which leaving the page closes too (pagehide, a keepalive fetch).
        ui.page.goto("about:blank")
        container.wait_for_close(new_id)
        assert ui.console_errors == [], ui.console_errors
    finally:
        context.close()

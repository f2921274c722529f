"""refine_prompt through the whole langsam request path (Invoker → LangSamService → refiner → GroundingDINO →
the sam2 service's box masks, on the tiny models), with the real openai client over HTTP to the fake
OpenAI-compatible server: every fallback is a 200 with masks and a warning, never an error."""

from __future__ import annotations

import base64
import json

import pytest

from segserve.inference.invocation import Invoker
from segserve.inference.sam2_client import Sam2Client
from segserve.inference.services import LangSamService, Sam2Service
from segserve.media.image_loading import ImageLoader
from segserve.models.embedding_cache import LruEmbeddingCache
from segserve.prompts.llm_endpoint import LlmEndpoint
from segserve.settings import LlmSettings, ModelSettings
from tests.conftest import make_scene
from tests.fake_llm import API_KEY, FakeLlm, Reply
from tests.integration.serving import encode
from tests.processes import free_port
from tests.unit.test_invocation import sam2_model

TITLE = "BLANKNYC Wide Leg Jean in Radio Star | REVOLVE"
# Random weights: every token passes text_threshold 0, so a box's label is the whole prompt it was given.
EVERY_BOX = {"box_threshold": 0.0, "text_threshold": 0.0, "max_detections": 2}
# Nothing passes: no mask decoding where the masks are not the point (the one image is encoded once, then cached).
NO_BOX = {"box_threshold": 1.0}


@pytest.fixture(scope="module")
def llm():
    with FakeLlm.running() as server:
        yield server


@pytest.fixture(scope="module")
def sam2(sam2_pipeline):
    """The sam2 model's side, in process, with a cache: the test image is encoded once for the whole module."""
    service = Sam2Service(sam2_pipeline, ImageLoader(), LruEmbeddingCache(256 * 1024 * 1024))
    return Sam2Client(sam2_model(service), lambda image_id: "sam2")


@pytest.fixture(scope="module")
def image_b64():
    return base64.b64encode(encode(make_scene(120, 160), "PNG")).decode()


def make_invoke(detector, sam2, base_url: str | None, api_key: str | None = API_KEY, cooldown_s: float = 0,
                **config):
    settings = ModelSettings(llm=LlmSettings(timeout_s=0.5, cooldown_s=cooldown_s), **config)
    endpoint = LlmEndpoint(api_key, base_url, None if api_key else "no LLM API key is configured on this endpoint")
    refiner = settings.prompt_refiner(endpoint, detector.prompt_problem)
    service = LangSamService(detector, sam2, ImageLoader(), settings.detection_params(), refiner)
    invoker = Invoker([service], detector.runtime)

    def call(payload: dict) -> tuple[int, dict]:
        reply = invoker(json.dumps(payload).encode(), "application/json", {}, "req-1")
        return reply.status, json.loads(reply.body)

    return call


@pytest.fixture(scope="module")
def invoke(detector, sam2, llm):
    return make_invoke(detector, sam2, llm.base_url)


def ask(invoke, image_b64, text, boxes=NO_BOX, **fields):
    status, body = invoke({"action": "langsam", "image": image_b64, "text_prompt": text, **boxes, **fields})
    assert status == 200, body  # the segmentation never fails
    assert len(body["masks"]) == (2 if boxes is EVERY_BOX else 0)
    return body


def test_the_detector_is_given_the_refined_prompt(llm, invoke, image_b64):
    llm.script(TITLE, Reply(phrases=("jeans",)))
    body = ask(invoke, image_b64, TITLE, EVERY_BOX, refine_prompt=True)
    assert body["text_prompt"] == TITLE and body["refined_prompt"] == "jeans."
    assert "warnings" not in body
    assert [m["label"] for m in body["masks"]] == ["jeans", "jeans"]
    assert "prompt_refinement" in body["timings_ms"]


def test_a_cache_hit_calls_no_llm(llm, invoke, image_b64):
    text = llm.script("Knit Wool Sweater | SHOP", Reply(phrases=("sweater",)))
    first = ask(invoke, image_b64, text, refine_prompt=True)
    again = ask(invoke, image_b64, text, refine_prompt=True)
    assert first["refined_prompt"] == again["refined_prompt"] == "sweater."
    assert len(llm.seen(text)) == 1
    assert "prompt_refinement" not in again["timings_ms"]


def test_without_refine_prompt_no_llm_is_asked(llm, invoke, image_b64):
    before = len(llm.requests)
    body = ask(invoke, image_b64, "red square", EVERY_BOX)
    assert len(llm.requests) == before
    assert "refined_prompt" not in body and "warnings" not in body
    assert {m["label"] for m in body["masks"]} == {"red square"}


def fallback(body: dict, text: str, code: str) -> None:
    assert body["text_prompt"] == text and body["refined_prompt"] is None
    assert [w["code"] for w in body["warnings"]] == [code]
    assert all(w["message"] for w in body["warnings"])


def test_malformed_output_falls_back_to_detecting_the_raw_text(llm, invoke, image_b64):
    text = llm.script("wide leg jeans in radio star", Reply(content="jeans, probably"))
    body = ask(invoke, image_b64, text, EVERY_BOX, refine_prompt=True)
    fallback(body, text, "refine_prompt_malformed_output")
    assert [m["label"] for m in body["masks"]] == [text, text]  # the detector was given the raw text


@pytest.mark.parametrize("text, reply, code, attempts", [
    ("wide leg jeans slow", Reply(phrases=("jeans",), delay_s=2.0), "refine_prompt_timeout", 2),
    ("wide leg jeans broken", Reply(status=500), "refine_prompt_server_error", 2),
], ids=["slow", "500"])
def test_each_llm_failure_falls_back_to_the_raw_text(llm, invoke, image_b64, text, reply, code, attempts):
    llm.script(text, reply)
    fallback(ask(invoke, image_b64, text, refine_prompt=True), text, code)
    assert len(llm.seen(text)) == attempts


def test_a_refused_key_falls_back_and_is_not_answered(llm, detector, sam2, image_b64):
    invoke = make_invoke(detector, sam2, llm.base_url, api_key="sk-revoked-0a1b2c3d")
    text = llm.script("wide leg jeans refused", Reply(phrases=("jeans",)))
    body = ask(invoke, image_b64, text, refine_prompt=True)
    fallback(body, text, "refine_prompt_key_refused")
    assert "sk-revoked-0a1b2c3d" not in json.dumps(body)


def test_an_unreachable_llm_falls_back(detector, sam2, image_b64):
    invoke = make_invoke(detector, sam2, f"http://127.0.0.1:{free_port()}/v1")
    fallback(ask(invoke, image_b64, "wide leg jeans", refine_prompt=True), "wide leg jeans",
             "refine_prompt_unreachable")


def test_a_missing_key_is_a_warning_not_a_400(detector, sam2, image_b64):
    invoke = make_invoke(detector, sam2, None, api_key=None)
    body = ask(invoke, image_b64, "wide leg jeans", refine_prompt=True)
    fallback(body, "wide leg jeans", "refine_prompt_not_configured")
    assert "no LLM API key" in body["warnings"][0]["message"]


def test_the_model_config_default_applies_unless_the_request_says_otherwise(llm, detector, sam2, image_b64):
    invoke = make_invoke(detector, sam2, llm.base_url, refine_prompt=True)
    text = llm.script("Satin Slip Dress", Reply(phrases=("dress",)))
    assert ask(invoke, image_b64, text)["refined_prompt"] == "dress."
    assert "refined_prompt" not in ask(invoke, image_b64, text, refine_prompt=False)


def test_while_the_llm_cools_down_the_answer_says_so(llm, detector, sam2, image_b64):
    invoke = make_invoke(detector, sam2, llm.base_url, cooldown_s=30)
    down = llm.script("wide leg jeans outage", Reply(status=503))
    fallback(ask(invoke, image_b64, down, refine_prompt=True), down, "refine_prompt_server_error")
    text = llm.script("wide leg jeans meanwhile", Reply(phrases=("jeans",)))
    body = ask(invoke, image_b64, text, EVERY_BOX, refine_prompt=True)
    fallback(body, text, "refine_prompt_cooling_down")
    assert [m["label"] for m in body["masks"]] == [text, text]  # the detector was given the raw text
    assert llm.seen(text) == [] and "prompt_refinement" not in body["timings_ms"]

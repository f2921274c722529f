"""refine_prompt on the live endpoint: the langsam worker asks the fake OpenAI-compatible server (OPENAI_BASE_URL)
with the real openai client, its key read at start from moto's Secrets Manager (SEGSERVE_OPENAI_SECRET_ID).

Each way the LLM can fail is still a 200 with the raw text detected and a warning; the key is in no answer
and no log line. Requests that do not need masks set box_threshold 1 (nothing detected, nothing to decode).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import make_scene
from tests.fake_llm import API_KEY, Reply
from tests.integration.conftest import LLM_TIMEOUT_S
from tests.integration.serving import b64, check_segmentation, encode, ok_json

pytestmark = pytest.mark.integration

EVERY_BOX = {"box_threshold": 0.0, "text_threshold": 0.0, "max_detections": 2}  # labels: the whole prompt
NO_BOX = {"box_threshold": 1.0}


@pytest.fixture(scope="module")
def refine_png():
    """This module's own picture (the scene's size, other noise): its encoding, cached by sam2, is no other
    module's cache hit (the web UI tests expect their first click on the shared scene to run the encoder)."""
    return encode(make_scene(240, 320, seed=7), "PNG")


def langsam(server, refine_png, text: str, boxes: dict = NO_BOX, **fields) -> dict:
    body = ok_json(server.invoke({"action": "langsam", "image": b64(refine_png), "text_prompt": text,
                                  "refine_prompt": True, **boxes, **fields}))
    assert body["text_prompt"] == text
    if boxes is EVERY_BOX:
        check_segmentation(body, "langsam")
    else:
        assert body["masks"] == []
    return body


def fell_back(body: dict, code: str) -> None:
    assert body["refined_prompt"] is None, body
    assert [w["code"] for w in body["warnings"]] == [code], body["warnings"]
    assert body["warnings"][0]["message"].endswith("the text prompt was used as sent")


def test_the_detector_gets_the_llms_phrases_with_the_key_from_secrets_manager(server, fake_llm, refine_png):
    text = fake_llm.script("BLANKNYC Wide Leg Jean in Radio Star | REVOLVE", Reply(phrases=("jeans",)))
    body = langsam(server, refine_png, text, EVERY_BOX)
    assert body["refined_prompt"] == "jeans." and "warnings" not in body
    assert [m["label"] for m in body["masks"]] == ["jeans", "jeans"]
    assert "prompt_refinement" in body["timings_ms"]
    (request,) = fake_llm.seen(text)
    assert request.authorization == f"Bearer {API_KEY}"  # the server's only source of it is the secret
    assert request.body["model"] == "gpt-4o-mini"


def test_the_same_text_again_is_answered_from_the_cache(server, fake_llm, refine_png):
    text = fake_llm.script("Mango Linen Blazer", Reply(phrases=("blazer",)))
    first = langsam(server, refine_png, text)
    again = langsam(server, refine_png, text)
    assert first["refined_prompt"] == again["refined_prompt"] == "blazer."
    assert len(fake_llm.seen(text)) == 1
    assert "prompt_refinement" in first["timings_ms"] and "prompt_refinement" not in again["timings_ms"]


def test_malformed_output_detects_the_raw_text(server, fake_llm, refine_png):
    text = fake_llm.script("red square", Reply(content="I think you mean: a square"))
    body = langsam(server, refine_png, text, EVERY_BOX)
    fell_back(body, "refine_prompt_malformed_output")
    assert [m["label"] for m in body["masks"]] == ["red square", "red square"]


@pytest.mark.parametrize("text, reply, code", [
    ("Slow Velvet Loafers", Reply(phrases=("loafers",), delay_s=LLM_TIMEOUT_S * 3), "refine_prompt_timeout"),
    ("Broken Denim Jacket", Reply(status=500), "refine_prompt_server_error"),
], ids=["slow", "500"])
def test_a_slow_or_failing_llm_is_retried_once_then_the_raw_text_is_used(server, fake_llm, refine_png, text, reply,
                                                                         code):
    fake_llm.script(text, reply)
    fell_back(langsam(server, refine_png, text), code)
    assert len(fake_llm.seen(text)) == 2  # the first attempt and one retry


def test_a_refused_key_is_a_warning_and_the_key_is_not_answered(server, fake_llm, refine_png):
    text = fake_llm.script("Revoked Key Sneakers", Reply(phrases=("sneakers",)))
    with fake_llm.refusing_keys():  # its 401 quotes the key
        reply = server.invoke({"action": "langsam", "image": b64(refine_png), "text_prompt": text,
                               "refine_prompt": True, **NO_BOX})
    fell_back(ok_json(reply), "refine_prompt_key_refused")
    assert API_KEY not in reply.text
    assert len(fake_llm.seen(text)) == 1


def test_an_unreachable_llm_is_a_warning(server, fake_llm, refine_png):
    with fake_llm.stopped():
        body = langsam(server, refine_png, "Unreachable Wool Coat")
    fell_back(body, "refine_prompt_unreachable")


def test_refine_prompt_in_custom_attributes_of_a_raw_image(server, fake_llm, refine_png):
    text = fake_llm.script("Silk Scarf by Hermes", Reply(phrases=("scarf",)))
    body = ok_json(server.invoke(data=refine_png, content_type="image/png", headers={
        "X-Amzn-SageMaker-Custom-Attributes": "action=langsam;text_prompt=Silk%20Scarf%20by%20Hermes;"
                                              "refine_prompt=true;box_threshold=1"}))
    assert body["text_prompt"] == text and body["refined_prompt"] == "scarf."


def test_the_key_is_in_no_log_while_the_fallbacks_are(server):
    files = [path for path in Path(server.run_dir).rglob("*") if path.is_file()]
    text = "\n".join(path.read_text(errors="replace") for path in files)
    assert "prompt refinement fell back to the raw text" in text  # the fallbacks above were logged...
    assert "the LLM API key was read from Secrets Manager secret 'segserve/test/openai'" in text
    assert API_KEY not in text  # ...and the key never was

"""The prompt refiner with the real openai client over real HTTP, against the fake OpenAI-compatible server.

Every way the LLM can fail ends in the raw text and a warning, never an exception; the key appears in no
warning and no log line, even though the fake server's 401 quotes it.
"""

from __future__ import annotations

import logging

import pytest

from segserve.models.runtime import Runtime, StageTimer
from segserve.prompts.llm_endpoint import LlmEndpoint
from segserve.settings import LlmSettings, ModelSettings
from tests.fake_llm import API_KEY, FakeLlm, Reply
from tests.processes import free_port

TIMEOUT_S = 0.5
SLOW_S = 2.0  # longer than the timeout, on the first attempt and on the retry


@pytest.fixture(scope="module")
def llm():
    with FakeLlm.running() as server:
        yield server


def make_refiner(base_url: str, api_key: str | None = API_KEY, check=lambda prompt: None, **llm_settings):
    """No cool-down unless asked (test_prompt_cooldown.py's): each test here sees the LLM's own answer."""
    llm_settings.setdefault("cooldown_s", 0)
    settings = ModelSettings(llm=LlmSettings(timeout_s=TIMEOUT_S, **llm_settings))
    return settings.prompt_refiner(LlmEndpoint(api_key, base_url, None if api_key else "no key here"), check)


@pytest.fixture(scope="module")
def refiner(llm):
    return make_refiner(llm.base_url)


def refine(refiner, text):
    timer = StageTimer(Runtime.select("cpu"))
    return refiner.refine(text, timer), timer


def test_a_product_title_becomes_detector_phrases(llm, refiner):
    text = llm.script("BLANKNYC Wide Leg Jean in Radio Star | REVOLVE", Reply(phrases=("Jeans", "denim  jacket")))
    result, timer = refine(refiner, text)
    assert result.text_prompt == text
    assert result.refined_prompt == result.detector_prompt == "jeans. denim jacket."
    assert result.warnings == ()
    assert "prompt_refinement" in timer.stages
    (request,) = llm.seen(text)
    assert request.path == "/v1/chat/completions" and request.authorization == f"Bearer {API_KEY}"
    assert request.body["model"] == "gpt-4o-mini" and request.body["temperature"] == 0
    assert request.body["response_format"]["type"] == "json_schema"
    assert request.body["response_format"]["json_schema"]["strict"] is True


def test_the_same_text_is_answered_from_the_cache(llm, refiner):
    text = llm.script("Levi's 501 Original Fit Jeans", Reply(phrases=("jeans",)))
    first, _ = refine(refiner, text)
    again, timer = refine(refiner, "  Levi's 501   Original Fit Jeans ")  # spacing differs: same entry
    assert first.refined_prompt == again.refined_prompt == "jeans."
    assert len(llm.seen(text)) == 1
    assert "prompt_refinement" not in timer.stages


@pytest.mark.parametrize("content, reason", [
    ("Sure! Here are the phrases: jeans", "not JSON"),
    ('{"phrases": []}', "failed validation"),
    ('{"phrases": ["a very long phrase of words"]}', "failed validation"),
    ('{"phrases": ["<b>jeans</b>"]}', "failed validation"),
    ('{"phrases": ["jeans"], "brand": "levi"}', "failed validation"),
    ('["jeans"]', "failed validation"),
    ("", "empty"),
])
def test_malformed_output_falls_back_to_the_raw_text(llm, refiner, content, reason):
    text = llm.script(f"malformed {content!r}", Reply(content=content))
    result, _ = refine(refiner, text)
    assert result.refined_prompt is None and result.detector_prompt == text
    (warning,) = result.warnings
    assert warning.code == "refine_prompt_malformed_output" and reason in warning.message
    assert len(llm.seen(text)) == 1  # malformed output is not retried


def test_a_200_that_is_no_chat_completion_is_malformed_output(llm, refiner):
    text = llm.script("Proxy Login Page Hoodie", Reply(html=True))
    (warning,) = refine(refiner, text)[0].warnings
    assert warning.code == "refine_prompt_malformed_output" and "not a chat completion" in warning.message


def test_phrases_the_detector_cannot_take_fall_back(llm):
    refiner = make_refiner(llm.base_url, check=lambda prompt: "words outside the detector's vocabulary")
    text = llm.script("an untokenizable title", Reply(phrases=("jeans",)))
    result, _ = refine(refiner, text)
    assert result.refined_prompt is None
    assert result.warnings[0].code == "refine_prompt_malformed_output"
    assert "vocabulary" in result.warnings[0].message


def test_a_failed_refinement_is_not_cached(llm, refiner):
    text = llm.script("Striped Cotton Shirt", Reply(status=503))
    assert refine(refiner, text)[0].warnings[0].code == "refine_prompt_server_error"
    llm.script(text, Reply(phrases=("shirt",)))
    assert refine(refiner, text)[0].refined_prompt == "shirt."


def test_a_slow_llm_times_out_is_retried_once_then_falls_back(llm, refiner):
    text = llm.script("Slow Suede Chelsea Boots", Reply(phrases=("boots",), delay_s=SLOW_S))
    result, timer = refine(refiner, text)
    assert result.detector_prompt == text and result.refined_prompt is None
    assert [w.code for w in result.warnings] == ["refine_prompt_timeout"]
    assert len(llm.seen(text)) == 2  # the first attempt and one retry
    assert "prompt_refinement" in timer.stages


def test_a_server_error_is_retried_once_then_falls_back(llm, refiner):
    text = llm.script("Wool Beanie Hat", Reply(status=500))
    result, _ = refine(refiner, text)
    assert result.warnings[0].code == "refine_prompt_server_error" and "500" in result.warnings[0].message
    assert len(llm.seen(text)) == 2


def test_a_refused_key_falls_back_and_the_key_is_never_shown(llm, caplog):
    wrong_key = "sk-wrong-key-9d8e7f6a5b"
    refiner = make_refiner(llm.base_url, api_key=wrong_key)
    text = llm.script("Leather Belt", Reply(phrases=("belt",)))
    with caplog.at_level(logging.DEBUG):
        result, _ = refine(refiner, text)
    (warning,) = result.warnings
    assert warning.code == "refine_prompt_key_refused" and "401" in warning.message
    assert len(llm.seen(text)) == 1  # a refused key is not retried
    assert caplog.records, "the fallback is logged"
    for shown in (warning.message, caplog.text, repr(result)):
        assert wrong_key not in shown and "wrong-key" not in shown


def test_an_unreachable_server_falls_back(llm):
    refiner = make_refiner(f"http://127.0.0.1:{free_port()}/v1")  # nothing listens there
    result, _ = refine(refiner, "Canvas Tote Bag")
    assert [w.code for w in result.warnings] == ["refine_prompt_unreachable"]
    assert result.detector_prompt == "Canvas Tote Bag"


def test_no_key_means_the_null_refiner_with_its_reason(llm):
    refiner = make_refiner(llm.base_url, api_key=None)
    result, timer = refine(refiner, "Canvas Tote Bag")
    (warning,) = result.warnings
    assert warning.code == "refine_prompt_not_configured" and "no key here" in warning.message
    assert result.detector_prompt == "Canvas Tote Bag" and not timer.stages


def test_temperature_null_is_not_sent(llm):
    refiner = make_refiner(llm.base_url, temperature=None)
    text = llm.script("Reasoning Model Scarf", Reply(phrases=("scarf",)))
    assert refine(refiner, text)[0].refined_prompt == "scarf."
    assert "temperature" not in llm.seen(text)[0].body

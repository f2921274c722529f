"""The LLM's cool-down: the first outage opens it, requests meanwhile skip the LLM at once with their own warning,
then one probe goes to the LLM — a good one closes it, a failed one opens it again.

The breaker alone on a fake clock, then the refiner with the real openai client over HTTP to the fake LLM
(tests/fake_llm.py, which records every request it gets), the clock still a fake one: no sleeps.
"""

from __future__ import annotations

import time

import pytest

from segserve.prompts.cooldown import Cooldown
from segserve.prompts.llm_endpoint import LlmEndpoint
from segserve.settings import ModelSettings
from tests.fake_llm import API_KEY, FakeLlm, Reply
from tests.unit.test_prompt_refiner import make_refiner, refine

COOLDOWN_S = 30.0


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


# ---- the breaker alone


def test_closed_it_allows_every_call_and_the_first_failure_opens_it():
    clock = Clock()
    cooldown = Cooldown(COOLDOWN_S, clock)
    assert all(cooldown.allow() for _ in range(3))
    cooldown.failed("the LLM did not answer in time")
    assert not cooldown.allow() and cooldown.reason == "the LLM did not answer in time"
    clock.advance(COOLDOWN_S - 0.1)
    assert not cooldown.allow()


def test_after_the_cool_down_one_probe_goes_and_a_good_one_closes_it():
    clock = Clock()
    cooldown = Cooldown(COOLDOWN_S, clock)
    cooldown.failed("down")
    clock.advance(COOLDOWN_S)
    assert cooldown.allow()  # the probe
    assert not cooldown.allow() and not cooldown.allow()  # the others wait for its answer
    assert cooldown.succeeded() is True
    assert all(cooldown.allow() for _ in range(3))
    assert cooldown.succeeded() is False  # already closed


def test_a_failed_probe_opens_it_again_for_the_whole_cool_down():
    clock = Clock()
    cooldown = Cooldown(COOLDOWN_S, clock)
    cooldown.failed("down")
    clock.advance(COOLDOWN_S + 5)
    assert cooldown.allow()
    cooldown.failed("still down")
    clock.advance(COOLDOWN_S - 0.1)
    assert not cooldown.allow() and cooldown.reason == "still down"
    clock.advance(0.1)
    assert cooldown.allow()


def test_zero_seconds_never_opens():
    cooldown = Cooldown(0, Clock())
    cooldown.failed("down")
    assert cooldown.allow() and cooldown.allow()


def test_negative_seconds_are_refused():
    with pytest.raises(ValueError, match=">= 0"):
        Cooldown(-1)


# ---- the refiner with it, over HTTP to the fake LLM


@pytest.fixture
def llm():
    with FakeLlm.running() as server:
        yield server


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def refiner(llm, clock):
    refiner = make_refiner(llm.base_url, cooldown_s=COOLDOWN_S, max_retries=0)
    refiner.cooldown.clock = clock
    return refiner


def skipped(refiner, llm, text: str) -> None:
    """Answered at once with the cool-down's warning, and the LLM was not called."""
    started = time.monotonic()
    result, timer = refine(refiner, text)
    assert time.monotonic() - started < 0.2
    assert result.refined_prompt is None and result.detector_prompt == text
    (warning,) = result.warnings
    assert warning.code == "refine_prompt_cooling_down"
    assert "cooling down" in warning.message and warning.message.endswith("the text prompt was used as sent")
    assert llm.seen(text) == [] and "prompt_refinement" not in timer.stages


def test_the_first_failure_opens_it_and_requests_meanwhile_skip_the_llm(llm, refiner, clock):
    down = llm.script("Broken Denim Jacket", Reply(status=503))
    (warning,) = refine(refiner, down)[0].warnings
    assert warning.code == "refine_prompt_server_error"  # the failure itself says what failed
    answered = llm.script("Striped Cotton Shirt", Reply(phrases=("shirt",)))
    skipped(refiner, llm, answered)
    clock.advance(COOLDOWN_S / 2)
    skipped(refiner, llm, "Wool Beanie Hat")
    message = refine(refiner, "Canvas Tote Bag")[0].warnings[0].message
    assert "the LLM server answered 503" in message  # which failure it is cooling down from


def test_a_timeout_opens_it_too(llm, refiner):
    slow = llm.script("Slow Velvet Loafers", Reply(phrases=("loafers",), delay_s=2.0))
    assert refine(refiner, slow)[0].warnings[0].code == "refine_prompt_timeout"
    skipped(refiner, llm, llm.script("Suede Boots", Reply(phrases=("boots",))))


def test_an_unreachable_llm_opens_it_and_the_same_server_is_probed_after(llm, refiner, clock):
    with llm.stopped():
        assert refine(refiner, "Canvas Tote Bag")[0].warnings[0].code == "refine_prompt_unreachable"
    text = llm.script("Leather Belt", Reply(phrases=("belt",)))
    skipped(refiner, llm, text)
    clock.advance(COOLDOWN_S)
    assert refine(refiner, text)[0].refined_prompt == "belt."


def test_cached_refinements_are_still_answered_while_it_is_open(llm, refiner):
    text = llm.script("Levi's 501 Original Fit Jeans", Reply(phrases=("jeans",)))
    assert refine(refiner, text)[0].refined_prompt == "jeans."
    refine(refiner, llm.script("Broken Denim Jacket", Reply(status=500)))
    again = refine(refiner, text)[0]
    assert again.refined_prompt == "jeans." and again.warnings == ()
    assert len(llm.seen(text)) == 1


def test_a_good_probe_closes_it(llm, refiner, clock):
    refine(refiner, llm.script("Broken Denim Jacket", Reply(status=500)))
    clock.advance(COOLDOWN_S)
    probe = llm.script("Striped Cotton Shirt", Reply(phrases=("shirt",)))
    result, timer = refine(refiner, probe)
    assert result.refined_prompt == "shirt." and result.warnings == ()
    assert len(llm.seen(probe)) == 1 and "prompt_refinement" in timer.stages
    after = llm.script("Wool Beanie Hat", Reply(phrases=("beanie",)))
    assert refine(refiner, after)[0].refined_prompt == "beanie."  # closed: no waiting for another cool-down
    assert len(llm.seen(after)) == 1


def test_a_failed_probe_opens_it_again(llm, refiner, clock):
    refine(refiner, llm.script("Broken Denim Jacket", Reply(status=500)))
    clock.advance(COOLDOWN_S)
    probe = llm.script("Still Broken Jacket", Reply(status=502))
    (warning,) = refine(refiner, probe)[0].warnings
    assert warning.code == "refine_prompt_server_error" and len(llm.seen(probe)) == 1
    text = llm.script("Striped Cotton Shirt", Reply(phrases=("shirt",)))
    clock.advance(COOLDOWN_S - 1)  # counted from the failed probe, not from the first failure
    skipped(refiner, llm, text)
    clock.advance(1)
    assert refine(refiner, text)[0].refined_prompt == "shirt."


def test_malformed_output_does_not_open_it(llm, refiner):
    bad = llm.script("Sure! jeans", Reply(content="Sure! Here are the phrases: jeans"))
    assert refine(refiner, bad)[0].warnings[0].code == "refine_prompt_malformed_output"
    text = llm.script("Striped Cotton Shirt", Reply(phrases=("shirt",)))
    assert refine(refiner, text)[0].refined_prompt == "shirt."  # the LLM answered: it is up


def test_the_model_config_sets_it_and_it_is_on_by_default(llm):
    endpoint = LlmEndpoint(API_KEY, llm.base_url)
    assert ModelSettings().prompt_refiner(endpoint, lambda prompt: None).cooldown.seconds == 30.0
    settings = ModelSettings.from_config({"llm": {"cooldown_s": 5}})
    assert settings.prompt_refiner(endpoint, lambda prompt: None).cooldown.seconds == 5.0

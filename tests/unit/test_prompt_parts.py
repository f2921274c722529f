"""The refiner's parts without a server: phrase validation, the bounded cache, the key's sources, the detector check."""

from __future__ import annotations

import pytest

from segserve.prompts.cache import RefinementCache
from segserve.prompts.llm_endpoint import llm_endpoint
from segserve.prompts.phrases import MAX_PHRASES, MalformedOutput, parse_phrases


def test_phrases_are_lower_cased_spaced_and_deduplicated():
    phrases = parse_phrases('{"phrases": ["Black  Jeans", "black jeans", "T-shirt", "men\'s hat"]}')
    assert phrases.phrases == ("black jeans", "t-shirt", "men's hat")
    assert phrases.detector_prompt == "black jeans. t-shirt. men's hat."


@pytest.mark.parametrize("content", [
    None, "", "jeans", "{", '{"phrases": "jeans"}', '{"phrases": [""]}', '{"phrases": ["   "]}',
    '{"phrases": ["jeans."]}', '{"phrases": ["one two three four five"]}', '{"phrases": ["caf\\u00e9"]}',
    '{"phrases": [' + ", ".join(['"a"'] * (MAX_PHRASES + 1)) + "]}", '{"phrases": [3]}', '{"words": ["jeans"]}',
])
def test_anything_but_a_few_short_plain_phrases_is_malformed(content):
    with pytest.raises(MalformedOutput):
        parse_phrases(content)


def test_the_cache_keeps_the_most_recently_used_entries():
    cache = RefinementCache(max_entries=2)
    jeans, hat, dog = (parse_phrases(f'{{"phrases": ["{p}"]}}') for p in ("jeans", "hat", "dog"))
    cache.put("Jeans A", jeans)
    cache.put("Hat B", hat)
    assert cache.get("Jeans  A") is jeans  # touched: "Hat B" is now the oldest
    cache.put("Dog C", dog)
    assert len(cache) == 2 and cache.get("Hat B") is None
    assert cache.get("Jeans A") is jeans and cache.get("Dog C") is dog


def test_a_cache_of_zero_entries_keeps_nothing():
    cache = RefinementCache(max_entries=0)
    cache.put("Jeans", parse_phrases('{"phrases": ["jeans"]}'))
    assert cache.get("Jeans") is None and len(cache) == 0


def test_the_key_and_base_url_come_from_the_standard_variables():
    endpoint = llm_endpoint({"OPENAI_API_KEY": "sk-abc", "OPENAI_BASE_URL": "http://127.0.0.1:9/v1"})
    assert (endpoint.api_key, endpoint.base_url, endpoint.problem) == ("sk-abc", "http://127.0.0.1:9/v1", None)
    assert "sk-abc" not in repr(endpoint)


@pytest.mark.parametrize("environ", [{}, {"OPENAI_API_KEY": ""}, {"OPENAI_BASE_URL": ""}])
def test_no_key_is_a_problem_to_report_not_an_error(environ):
    endpoint = llm_endpoint(environ)
    assert endpoint.api_key is None and endpoint.base_url is None
    assert "OPENAI_API_KEY" in endpoint.problem and "SEGSERVE_OPENAI_SECRET_ID" in endpoint.problem


def test_the_detector_check_refuses_what_its_tokenizer_cannot_take(detector):
    assert detector.prompt_problem("jeans. denim jacket.") is None
    assert "vocabulary" in detector.prompt_problem("\u2603 snowman.")
    assert "256 tokens" in detector.prompt_problem("dog " * 300)

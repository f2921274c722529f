"""The sam3 request: concept mode (text and/or exemplar boxes) or click mode (sam2's fields), never both."""

from __future__ import annotations

import pytest

from segserve.contract.errors import InvalidRequest
from segserve.contract.requests import MAX_PHRASES, Sam3Request, parse_request

IMAGE = {"action": "sam3", "image_id": "abc"}


def test_a_text_prompt_is_its_phrases_each_once():
    request = parse_request({**IMAGE, "text_prompt": "Yellow  School bus. dog.. yellow school bus"})
    assert isinstance(request, Sam3Request)
    assert request.phrases == ["yellow school bus", "dog"]
    assert request.exemplars is None and not request.has_click


def test_exemplar_labels_default_to_positive():
    request = parse_request({**IMAGE, "exemplar_boxes": [[1, 2, 30, 40], [5, 5, 9, 9]]})
    assert request.exemplars == ([[1, 2, 30, 40], [5, 5, 9, 9]], [1, 1])
    assert request.phrases == []


def test_a_click_uses_sams_fields():
    request = parse_request({**IMAGE, "points": [[3, 4]], "labels": [1], "multimask": False})
    assert request.has_click and request.point_prompts == ([[3, 4]], [1])


@pytest.mark.parametrize("fields, message", [
    ({}, "a sam3 request needs a prompt"),
    ({"text_prompt": "dog", "x": 3, "y": 4}, "go in separate requests"),
    ({"exemplar_boxes": [[0, 0, 5, 5]], "box": [0, 0, 5, 5]}, "go in separate requests"),
    ({"text_prompt": " . . "}, "text_prompt has no words"),
    ({"text_prompt": ""}, "text_prompt: String should have at least 1 character"),
    ({"text_prompt": ". ".join(f"thing {i}" for i in range(MAX_PHRASES + 1))}, f"at most {MAX_PHRASES}"),
    ({"exemplar_boxes": [[0, 0, 5, 5]], "exemplar_labels": [1, 0]}, "one entry (1 like this, 0 not this)"),
    ({"exemplar_labels": [1], "x": 1, "y": 1}, "only text_prompt or exemplar_boxes take exemplar_labels"),
    ({"exemplar_boxes": [[5, 0, 5, 5]]}, "x0 < x1 and y0 < y1"),
    ({"text_prompt": "dog", "multimask": False}, "multimask is for clicks"),
    ({"x": 1, "y": 1, "score_threshold": 0.2}, "only text_prompt or exemplar_boxes take score_threshold"),
    ({"text_prompt": "dog", "score_threshold": 1.5}, "score_threshold: Input should be less than or equal to 1"),
    ({"points": [[1, 1]]}, "labels must have one entry"),
])
def test_bad_sam3_requests_say_what_is_wrong(fields, message):
    with pytest.raises(InvalidRequest, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_request({**IMAGE, **fields})


@pytest.mark.parametrize("fields, field", [
    ({"exemplar_boxes": [[0, 0, 50, 20]]}, "exemplar_boxes"),
    ({"box": [0, 0, 10, 31]}, "box"),
    ({"x": 41, "y": 3}, "x"),
])
def test_prompts_outside_the_image_are_refused_with_their_field(fields, field):
    request = parse_request({**IMAGE, **fields})
    with pytest.raises(InvalidRequest, match="outside the 40x30 image") as caught:
        request.check_inside(30, 40)
    assert caught.value.field == field

"""Property-based tests of request parsing (hypothesis): any JSON, any body bytes and any custom-attributes
header give a valid request or an InvalidRequest, never another exception; custom attributes round-trip."""

from __future__ import annotations

import json
from urllib.parse import quote

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from segserve.contract.wire import decode_json, parse_custom_attributes
from segserve.contract.requests import ACTIONS, LangSamRequest, PingRequest, Sam2Request, Sam3Request, parse_request
from segserve.contract.errors import InvalidRequest

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
REQUESTS = (LangSamRequest, Sam2Request, Sam3Request, PingRequest)
FIELDS = sorted({name for model in REQUESTS for name in model.model_fields})

json_scalars = (st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False)
                | st.text(max_size=12))
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=6), inner, max_size=4), max_leaves=12)
# Objects that look like requests: a real action and real field names, with values of any JSON type.
request_like = st.builds(
    lambda action, fields: {"action": action, **fields},
    st.sampled_from(ACTIONS) | json_values,
    st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=6), json_values, max_size=6),
)


def _parsed_or_refused(payload: object, **options) -> None:
    try:
        request = parse_request(payload, **options)
    except InvalidRequest as error:
        assert error.status == 400 and error.message
        assert "Traceback" not in error.message and "pydantic" not in error.message, error.message
        return
    assert isinstance(request, REQUESTS)
    assert request.action == payload["action"]


@SETTINGS
@given(json_values | request_like)
def test_any_json_is_a_request_or_an_invalid_request(payload):
    _parsed_or_refused(payload)


@SETTINGS
@given(request_like, st.booleans())
def test_string_typed_sources_are_a_request_or_an_invalid_request(payload, raw_image):
    _parsed_or_refused(payload, strict=False, raw_image=raw_image)


@SETTINGS
@given(st.binary(max_size=200) | json_values.map(lambda value: json.dumps(value).encode()))
def test_any_body_bytes_decode_to_json_or_an_invalid_request(body):
    try:
        decode_json(body)
    except InvalidRequest as error:
        assert error.message.startswith("the body is not valid JSON")


@SETTINGS
@given(st.text(max_size=200))
def test_any_custom_attributes_header_parses_or_is_an_invalid_request(text):
    try:
        attributes = parse_custom_attributes(text)
    except InvalidRequest as error:
        assert error.message
        return
    assert all(isinstance(key, str) and key == key.strip() and key for key in attributes)


attribute_keys = st.text(st.characters(codec="ascii", exclude_characters=";=%"), min_size=1, max_size=10).filter(
    lambda key: key.strip() == key and key)
# Strings the header carries as strings: not read as JSON (no leading [ or {), no surrounding space.
attribute_strings = st.text(max_size=20).filter(lambda value: value.strip() == value and value[:1] not in "[{")
attribute_json = st.lists(st.integers(-1000, 1000), max_size=4) | st.dictionaries(
    st.text(max_size=4), st.integers(), max_size=3)


@SETTINGS
@given(st.dictionaries(attribute_keys, attribute_strings | attribute_json, max_size=6))
def test_custom_attributes_round_trip_when_percent_encoded(attributes):
    def encoded(value) -> str:
        return quote(value if isinstance(value, str) else json.dumps(value), safe="")

    header = ";".join(f"{key}={encoded(value)}" for key, value in attributes.items())
    assert parse_custom_attributes(header) == attributes


prompts = attribute_strings.filter(bool)
sam2_fields = st.builds(lambda x, y, multimask: {"action": "sam2", "x": x, "y": y, "multimask": multimask},
                        st.integers(0, 5000), st.integers(0, 5000), st.booleans())
langsam_fields = st.builds(lambda prompt, count: {"action": "langsam", "text_prompt": prompt, "max_detections": count},
                           prompts, st.integers(1, 200))


@SETTINGS
@given(sam2_fields | langsam_fields)
def test_a_raw_image_request_from_custom_attributes_equals_its_json_form(fields):
    def text(value) -> str:
        return str(value).lower() if isinstance(value, bool) else str(value)

    header = ";".join(f"{key}={quote(text(value), safe='')}" for key, value in fields.items())
    from_header = parse_request(parse_custom_attributes(header), strict=False, raw_image=True)
    as_json = parse_request({**fields, "image_id": "an-earlier-image"})
    assert from_header.model_dump(exclude={"image_id"}) == as_json.model_dump(exclude={"image_id"})

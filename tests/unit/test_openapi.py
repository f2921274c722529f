"""docs/openapi.yaml against the code: it is what the generator makes now, it is valid OpenAPI 3.1, and the
request bodies it calls valid or invalid are exactly what the pydantic schema accepts or refuses."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import pytest
import schemathesis
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openapi_spec_validator import validate
from schemathesis import GenerationMode
from schemathesis.core.parameters import ParameterLocation

from segserve.contract import errors
from segserve.contract.wire import IMAGE_TYPES, JSON, JSON_LINES
from segserve.contract.openapi import build_document, main, render
from pydantic import TypeAdapter

from segserve.contract.requests import LangSamRequest, PingRequest, Request, Sam2Request, Sam3Request, parse_request
from segserve.contract.errors import InvalidRequest

DOCUMENT = Path(__file__).resolve().parents[2] / "docs" / "openapi.yaml"
MODELS = {"LangSamRequest": LangSamRequest, "Sam2Request": Sam2Request, "Sam3Request": Sam3Request,
          "PingRequest": PingRequest}
# What JSON Schema cannot say, so a body the document calls valid may still be refused for it (400).
CROSS_FIELD_RULES = ("give exactly one of", "x and y go together", "give either x/y or points", "labels must have",
                     "labels without points", "box must be", "a sam2 request needs a prompt", "boxes go alone",
                     "each of boxes must be", "text_prompt/exemplar_boxes (every instance)", "a sam3 request needs",
                     "multimask is for clicks", "text_prompt has", "only text_prompt or exemplar_boxes take",
                     "exemplar_labels must have", "each of exemplar_boxes must be")


@pytest.fixture(scope="module")
def document() -> dict:
    return yaml.safe_load(DOCUMENT.read_text())


def test_the_committed_document_is_what_the_generator_makes():
    assert DOCUMENT.read_text() == render(build_document()), "docs/openapi.yaml is out of date: run `make openapi`"
    assert main(["--check", str(DOCUMENT)]) == 0


def test_the_check_option_fails_on_a_stale_document(tmp_path, capsys):
    stale = tmp_path / "openapi.yaml"
    stale.write_text(DOCUMENT.read_text().replace("maxLength: 2000", "maxLength: 3000"))
    assert main(["--check", str(stale)]) == 1
    assert "make openapi" in capsys.readouterr().err


def test_the_document_is_valid_openapi_3_1(document):
    assert document["openapi"].startswith("3.1")
    validate(document)


def test_request_schemas_are_the_pydantic_ones(document):
    schemas = document["components"]["schemas"]
    for name, model in MODELS.items():
        documented = schemas[name]
        assert set(documented["properties"]) == set(model.model_fields), name
        assert set(documented.get("required", [])) == {n for n, f in model.model_fields.items() if f.is_required()}
        assert documented["additionalProperties"] is False, f"{name}: unknown fields are refused"
        pydantic = TypeAdapter(Request).json_schema()["$defs"][name]["properties"]
        for field, spec in documented["properties"].items():
            without_words = {k: v for k, v in spec.items() if k != "description"}
            expected = {k: v for k, v in pydantic[field].items() if k != "title"}
            assert json.loads(json.dumps(without_words).replace("#/components/schemas/", "#/$defs/")) == expected
            assert spec["description"], f"{name}.{field} needs a description"
    assert schemas["InvocationRequest"]["discriminator"]["propertyName"] == "action"


def test_every_content_type_the_server_reads_is_documented(document):
    content = document["paths"]["/invocations"]["post"]["requestBody"]["content"]
    assert {JSON, *JSON_LINES, *IMAGE_TYPES} <= set(content)


def test_every_error_code_is_documented_with_its_status(document):
    kinds = [kind for kind in vars(errors).values()
             if isinstance(kind, type) and issubclass(kind, errors.ServiceError)]
    responses = document["paths"]["/invocations"]["post"]["responses"]
    documented_codes = set(document["components"]["schemas"]["ErrorDetail"]["properties"]["code"]["enum"])
    for kind in kinds:
        assert kind.code in documented_codes, kind
        codes = responses[str(kind.status)]["content"][JSON]["schema"]
        codes = codes.get("oneOf", [codes])[0]["properties"]["error"]["properties"]["code"]["enum"]
        assert kind.code in codes, (kind.status, kind.code)


@functools.cache
def _json_bodies(mode: GenerationMode):
    """Cases of /invocations reduced to its JSON body: request objects the document calls valid (or not)."""
    reduced = yaml.safe_load(DOCUMENT.read_text())
    operation = reduced["paths"]["/invocations"]["post"]
    operation["requestBody"]["content"] = {JSON: operation["requestBody"]["content"][JSON]}
    operation.pop("parameters")
    return schemathesis.openapi.from_dict(reduced)["/invocations"]["POST"].as_strategy(mode)


def _refusal(body) -> str | None:
    try:
        parse_request(body)
    except InvalidRequest as error:
        return error.message
    return None


def _integral_float_for_an_integer(body: dict, message: str) -> bool:
    """JSON Schema counts 38.0 as an integer; the strict schema wants 38 (the field descriptions say so)."""
    value = body
    for part in message.split(":", 1)[0].split("."):
        value = value[int(part)] if isinstance(value, list) else value.get(part) if isinstance(value, dict) else None
    return isinstance(value, float) and value.is_integer()


@settings(max_examples=150, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(st.data())
def test_bodies_the_document_calls_valid_are_accepted_but_for_cross_field_rules(data):
    body = data.draw(_json_bodies(GenerationMode.POSITIVE)).body
    message = _refusal(body)
    assert message is None or message.startswith(CROSS_FIELD_RULES) or _integral_float_for_an_integer(body, message), (
        body, message)


@settings(max_examples=150, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(st.data())
def test_bodies_the_document_calls_invalid_are_refused(data):
    case = data.draw(_json_bodies(GenerationMode.NEGATIVE))
    if case.meta.components[ParameterLocation.BODY].mode is GenerationMode.NEGATIVE:
        assert _refusal(case.body) is not None, case.body


"""The OpenAPI 3.1 document of the endpoint's HTTP contract, built from the code that enforces it.

Request bodies come from the request models (requests.py), answers from the typed answer models that the
services build (responses.py), content types from wire.py and error codes and statuses from errors.py, so none
of them can drift from the document: docs/openapi.yaml is this module's output, and a unit test fails when the
committed file differs from it. The live fuzz test checks real answers against it, unknown fields refused.

    python -m segserve.contract.openapi > docs/openapi.yaml        (make openapi)
"""

from __future__ import annotations

import argparse
import json
import sys

import yaml
from pydantic import TypeAdapter
from pydantic.json_schema import models_json_schema

from segserve.contract import errors, responses
from segserve.contract.requests import MAX_EXEMPLARS, MAX_PHRASES, MAX_POINTS, RENDERINGS, Request
from segserve.contract.sessions import CLOSED_SESSION_HEADER, NEW_SESSION, NEW_SESSION_HEADER, SESSION_HEADER
from segserve.contract.wire import CUSTOM_ATTRIBUTES_HEADER, IMAGE_TYPES, JSON, JSON_LINES

SCHEMAS = "#/components/schemas/"

FIELD_DESCRIPTIONS = {
    "action": "What to do: `langsam` (text prompt), `sam2` (points/box), `sam3` (text or exemplar boxes → every "
              "instance, or clicks), `ping` (readiness).",
    "image_url": "`http`, `https` or `s3://bucket/key`, fetched by the server: public addresses only, 20 MiB, "
                 "10 s, 3 redirects (docs/API.md §2.2).",
    "image": "The image file in base64 (standard or URL-safe, padding optional) or a `data:...;base64,` URL.",
    "image_id": "`image.id` of an earlier answer, instead of sending the image again: served from the SAM2 "
                "embedding cache; unknown or evicted → 404 (send the image again).",
    "mask_format": "How each mask is encoded: COCO RLE, a PNG, or COCO polygons.",
    "return_images": "Also return base64 PNGs: `true` for all of " + ", ".join(RENDERINGS) + ", or a list.",
    "text_prompt": "What to find; separate several things with `.` (langsam: at most 256 tokens; sam3: at most "
                   f"{MAX_PHRASES} phrases, each labels its detections).",
    "box_threshold": "Keep a detection when its best token score is above this.",
    "text_threshold": "Prompt words scoring above this make up a detection's label.",
    "max_detections": "At most this many detections, the best by score. Integers are written "
                      "without a fraction (`38`, not `38.0`): JSON types are checked strictly.",
    "refine_prompt": "Turn the text into detector phrases with the endpoint's LLM first; when that fails the "
                     "text is used as sent and the answer carries `warnings` (never an error). Default: the "
                     "model-config's (`false` as shipped).",
    "x": "One positive point's column (pixels, ≤ image width); with `y`, not with `points`.",
    "y": "One positive point's row (pixels, ≤ image height); with `x`.",
    "points": f"1–{MAX_POINTS} points `[x, y]` in pixels, inside the image; needs `labels`.",
    "labels": "One per point: 1 = the object, 0 = not the object (integers: `1`, not `1.0`).",
    "box": "`[x0, y0, x1, y1]` in pixels, x0 < x1, y0 < y1, inside the image.",
    "boxes": "Several objects at once: one mask per box `[x0, y0, x1, y1]` (x0 ≤ x1, y0 ≤ y1), in box order; "
             "alone, without other prompts. `[]`: only encode and cache the image.",
    "multimask": "`true`: 3 candidate masks; `false`: 1.",
    "mask_input": "A COCO RLE mask (`{\"size\": [h, w], \"counts\": ...}`) from an earlier answer, to refine.",
    "exemplar_boxes": f"sam3: 1–{MAX_EXEMPLARS} example boxes `[x0, y0, x1, y1]` in pixels (x0 < x1, y0 < y1), "
                      "inside the image: find every instance like (or, label 0, unlike) them.",
    "exemplar_labels": "sam3: one per exemplar box, 1 = more like this, 0 = not this; default all 1.",
    "score_threshold": "sam3: keep a detection when its score is above this.",
    "mask_threshold": "sam3: a pixel is in a mask when its probability is above this.",
}

# Rules across fields that JSON Schema does not express here; the server answers 400 for each.
REQUEST_RULES = {
    "LangSamRequest": "Exactly one of `image_url`, `image`, `image_id` (none for a raw image body).",
    "Sam2Request": "Exactly one of `image_url`, `image`, `image_id` (none for a raw image body). A prompt is "
                   "required: `x`/`y` (together), `points` with as many `labels`, `box`, `mask_input`, or `boxes` (alone); "
                   "not `x`/`y` and `points` together. Points and boxes must lie inside the image.",
    "Sam3Request": "Exactly one of `image_url`, `image`, `image_id` (none for a raw image body). Concept mode: "
                   "`text_prompt` and/or `exemplar_boxes` (with as many `exemplar_labels`), and the thresholds; or "
                   "click mode: sam2's `x`/`y`, `points`, `box`, `mask_input`, `multimask` and rules. Not both modes.",
    "PingRequest": "Readiness of the router and every model, through the normal request path.",
}


def build_document() -> dict:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "segserve",
            "version": "1",
            "summary": "Text-prompted (Lang-SAM, SAM 3) and point-prompted (SAM2, SAM 3) segmentation on one "
                       "SageMaker endpoint.",
            "description": "Generated by `make openapi` from src/segserve/contract (requests.py, responses.py, "
                           "wire.py, errors.py); do not edit by hand. docs/API.md explains every field with examples.",
        },
        "servers": [{"url": "http://127.0.0.1:8080", "description": "`make serve` (SageMaker: port 8080 behind "
                                                                     "InvokeEndpoint)"}],
        "paths": {
            "/invocations": {"post": _invocations()},
            "/ping": {"get": _ping()},
            "/execution-parameters": {"get": _execution_parameters()},
        },
        "components": {"schemas": {**_request_schemas(), **_answer_schemas()}},
    }


# --- requests -----------------------------------------------------------------------------------------------


def _request_schemas() -> dict:
    union = TypeAdapter(Request).json_schema(ref_template=SCHEMAS + "{model}")
    schemas = union.pop("$defs")
    for name, schema in schemas.items():
        schema["description"] = REQUEST_RULES[name]
        for field, spec in schema["properties"].items():
            spec.pop("title", None)
            spec["description"] = FIELD_DESCRIPTIONS[field]
    schemas["InvocationRequest"] = {"description": "One request; `action` chooses its kind.", **union}
    return schemas


def _invocations() -> dict:
    request = {"$ref": SCHEMAS + "InvocationRequest"}
    raw = {"type": "string", "format": "binary",
           "description": f"The image file itself; the other fields come from `{CUSTOM_ATTRIBUTES_HEADER}`."}
    lines = {"type": "array", "items": request,
             "description": "JSON Lines: one request object per line (a line that is not one gets an error line)."}
    body = {
        JSON: {"schema": request},
        f"{JSON}; charset=utf-8": {"schema": request},
        **{media: {"schema": lines} for media in JSON_LINES},
        **{media: {"schema": raw} for media in IMAGE_TYPES},
    }
    return {
        "operationId": "invoke",
        "summary": "Segment an image (langsam, sam2, sam3) or ask for readiness (ping); JSON Lines for batches.",
        "description": "The Content-Type chooses how the body is read (its parameters and case are ignored); "
                       "a body without one is read as JSON when it starts with `{`. Any other type → 415.",
        "parameters": [{
            "name": CUSTOM_ATTRIBUTES_HEADER,
            "in": "header",
            "required": False,
            "description": "For a raw image body: `key=value` pairs separated by `;`, values percent-decoded, "
                           "`[`/`{` values read as JSON, other values converted leniently (`x=200`, "
                           "`multimask=false`). The same fields and bounds as JSON; ignored for JSON bodies.",
            "schema": {"type": "string", "maxLength": 1024},
            "example": "action=langsam;text_prompt=black%20jeans;max_detections=3",
        }, {
            "name": SESSION_HEADER,
            "in": "header",
            "required": False,
            "description": f"SageMaker stateful sessions (docs/API.md §3.6): `{NEW_SESSION}` opens one (the answer "
                           f"names it in `{NEW_SESSION_HEADER}`), an id routes to its instance. The bodies "
                           f'`{{"requestType": "{NEW_SESSION}"}}` and `{{"requestType": "CLOSE"}}` (answered with '
                           f"`{CLOSED_SESSION_HEADER}`) are answered by the router itself.",
            "schema": {"type": "string", "maxLength": 256, "pattern": "^(NEW_SESSION|[a-zA-Z0-9](-*[a-zA-Z0-9])*)$"},
            "example": NEW_SESSION,
        }],
        "requestBody": {"required": True, "content": body},
        "responses": _invocation_responses(),
    }


# --- answers ------------------------------------------------------------------------------------------------


def _invocation_responses() -> dict:
    answer = {"oneOf": [{"$ref": SCHEMAS + kind.__name__} for kind in responses.Response.__args__]}
    batch = {"type": "string", "description": "One JSON line per non-empty input line, in order: an answer or a "
                                              "`BatchErrorLine`. Always 200."}
    statuses = {"200": {"description": "The answer (`ReadinessResponse` for `ping`).",
                         "content": {JSON: {"schema": answer}, **{m: {"schema": batch} for m in JSON_LINES[:1]}}}}
    for status, codes in sorted(_codes_by_status().items()):
        # The error shape, with only this status's codes.
        schema = {"allOf": [{"$ref": SCHEMAS + "ErrorResponse"}],
                  "properties": {"error": {"properties": {"code": {"enum": codes}}}}}
        description = "`" + "`, `".join(codes) + "`"
        if status == 503:
            schema = {"oneOf": [schema, {"$ref": SCHEMAS + "ReadinessResponse"}]}
            description += "; or the `ReadinessResponse` of a `ping` while a model is not ready"
        response = {"description": description, "content": {JSON: {"schema": schema}}}
        if status == 503:
            response["headers"] = {"Retry-After": {
                "description": "On the error answers: seconds to wait before retrying (as `retry_after_s`).",
                "schema": {"type": "integer", "minimum": 1}}}
        if status == 413:
            response["description"] += "; TorchServe itself answers an EMPTY 413 for a body over its request limit"
        statuses[str(status)] = response
    return statuses


def _ping() -> dict:
    health = {"$ref": SCHEMAS + "HealthResponse"}
    return {
        "operationId": "ping",
        "summary": "SageMaker's health check: 200 once every model has a loaded worker, else 503.",
        "responses": {
            "200": {"description": "Healthy", "content": {JSON: {"schema": health}}},
            "503": {"description": "Unhealthy (starting, or a model has no loaded worker)",
                    "content": {JSON: {"schema": health}}},
        },
    }


def _execution_parameters() -> dict:
    return {
        "operationId": "executionParameters",
        "summary": "SageMaker batch transform's suggested settings.",
        "responses": {"200": {"description": "From the SAGEMAKER_* environment and the router's workers",
                              "content": {JSON: {"schema": {"$ref": SCHEMAS + "ExecutionParameters"}}}}},
    }


ANSWERS = (responses.LangSamResponse, responses.Sam2Response, responses.Sam3Response, responses.ReadinessResponse,
           responses.HealthResponse, responses.ExecutionParameters, responses.ErrorResponse, responses.BatchErrorLine)
ALWAYS_SENT = ("timings_ms",)  # defaults in the models (the Invoker fills them in), present in every answer


def _answer_schemas() -> dict:
    _, document = models_json_schema([(kind, "serialization") for kind in ANSWERS], ref_template=SCHEMAS + "{model}")
    schemas = {name: _without_titles(schema) for name, schema in document["$defs"].items()}
    for schema in schemas.values():
        present = [name for name in ALWAYS_SENT if name in schema.get("properties", {})]
        if present:
            schema["required"] = [*schema.get("required", []), *present]
    every_code = sorted({kind.code for kind in _service_errors()})
    for name in ("ErrorDetail", "BatchErrorDetail"):
        schemas[name]["properties"]["code"]["enum"] = every_code
    return schemas


def _without_titles(schema: object) -> object:
    """pydantic's generated titles repeat the names; the document keeps descriptions only."""
    if isinstance(schema, dict):
        return {key: _without_titles(value) for key, value in schema.items()
                if not (key == "title" and isinstance(value, str))}
    if isinstance(schema, list):
        return [_without_titles(value) for value in schema]
    return schema


# --- errors -------------------------------------------------------------------------------------------------


def _service_errors() -> list[type[errors.ServiceError]]:
    found, pending = [], [errors.ServiceError]
    while pending:
        kind = pending.pop()
        found.append(kind)
        pending.extend(kind.__subclasses__())
    return found


def _codes_by_status() -> dict[int, list[str]]:
    """HTTP status → the error codes answered with it (from errors.py)."""
    codes: dict[int, set[str]] = {}
    for kind in _service_errors():
        codes.setdefault(kind.status, set()).add(kind.code)
    return {status: sorted(names) for status, names in codes.items()}


def render(document: dict) -> str:
    # Through JSON first: shared sub-schemas become copies, so the YAML has no anchors or aliases.
    return yaml.safe_dump(json.loads(json.dumps(document)), sort_keys=False, allow_unicode=True, width=120)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m segserve.contract.openapi", description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", metavar="FILE", help="exit 1 if FILE differs from the generated document")
    args = parser.parse_args(argv)
    text = render(build_document())
    if args.check:
        with open(args.check, encoding="utf-8") as committed:
            if committed.read() != text:
                print(f"{args.check} is out of date: run `make openapi`", file=sys.stderr)
                return 1
        return 0
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

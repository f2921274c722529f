"""Generated requests for the live fuzz test, from docs/openapi.yaml (schemathesis), kept on this machine and
within a CPU budget.

Every generated `image_url` that would be fetched (http, https, s3) is replaced by one on the test's own
image server or moto, so nothing leaves 127.0.0.1. Most bodies are refused cheaply (a random base64 string
is no image); every RUNNABLE_EVERY-th segmentation request is made runnable — a real image, prompts moved
onto it, few detections — so that the fuzz run also exercises the models and their answers.
"""

from __future__ import annotations

import base64
import itertools
import json
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

import schemathesis
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.transport.serialization import serialize_binary

from segserve.contract.wire import IMAGE_TYPES, JSON_LINES

DOCUMENT = Path(__file__).resolve().parents[2] / "docs" / "openapi.yaml"
# Every n-th segmentation body is made runnable: counted, not drawn, because hypothesis draws boundary values
# such as 0 far more often than their share, which would make the budget anyone's guess.
RUNNABLE_EVERY = 40  # each costs one SAM2 image encoding (~1-2 s on two cores)
RUNNABLE_MAX_DETECTIONS = 3


@schemathesis.serializer(*JSON_LINES)
def _json_lines(ctx, value) -> dict:
    """A JSON Lines batch: each generated item on its own line (anything else as one line)."""
    items = value if isinstance(value, list) else [value]
    return {"data": b"".join(json.dumps(item).encode() + b"\n" for item in items)}


# schemathesis ships serializers only for the image types it has sample files of.
schemathesis.serializer(*(t for t in IMAGE_TYPES if t not in ("image/jpeg", "image/png", "image/webp", "image/gif")))(
    lambda ctx, value: {"data": serialize_binary(value)})


def load_operations() -> dict[str, object]:
    schema = schemathesis.openapi.from_path(str(DOCUMENT))
    return {"invoke": schema["/invocations"]["POST"], "ping": schema["/ping"]["GET"],
            "execution-parameters": schema["/execution-parameters"]["GET"]}


def cases(operations: Mapping[str, object], failing_urls: list[str], image_png: bytes, size: tuple[int, int]):
    """Cases of every operation, /invocations six times out of eight, half of them schema-invalid.

    `failing_urls` replace generated image URLs. A runnable body gets `image_png`, which must be an image no
    other test sends: the embedding cache keeps what the fuzz run encoded, and a test that expects its first
    click to run the encoder must not find its image cached.
    """
    invoke = operations["invoke"]
    kinds = [invoke.as_strategy(GenerationMode.POSITIVE)] * 3 + [invoke.as_strategy(GenerationMode.NEGATIVE)] * 3
    kinds += [operations["ping"].as_strategy(), operations["execution-parameters"].as_strategy()]
    image = base64.b64encode(image_png).decode()
    counter = itertools.count(1)

    @st.composite
    def kept_local(draw, kind):
        case = draw(kind)
        for body in case.body if isinstance(case.body, list) else [case.body]:
            if isinstance(body, dict) and isinstance(body.get("image_url"), str) and _fetched(body["image_url"]):
                body["image_url"] = draw(st.sampled_from(failing_urls))
        if isinstance(case.body, dict) and case.body.get("action") in ("sam2", "langsam", "sam3"):
            if next(counter) % RUNNABLE_EVERY == 0:
                _make_runnable(case.body, image, size)
        return case

    return st.sampled_from(kinds).flatmap(kept_local)


def _fetched(url: str) -> bool:
    """Whether the server would fetch this URL (the same urlsplit the server uses decides the scheme)."""
    try:
        return urlsplit(url).scheme in ("http", "https", "s3")
    except ValueError:
        return False


def _make_runnable(body: dict, image: str, size: tuple[int, int]) -> None:
    """The real image instead of the generated source, every prompt moved onto it, few detections."""
    width, height = size
    for name in ("image_url", "image_id"):
        body.pop(name, None)
    body["image"] = image
    if _number(body.get("x")) and _number(body.get("y")):
        body["x"], body["y"] = body["x"] % width, body["y"] % height
    if isinstance(body.get("points"), list):
        body["points"] = [[p[0] % width, p[1] % height] if _pair(p) else p for p in body["points"]]
    if isinstance(body.get("box"), list) and len(body["box"]) == 4 and all(_number(v) for v in body["box"]):
        body["box"] = [0, 0, width, height]
    body.pop("mask_input", None)
    if isinstance(body.get("exemplar_boxes"), list):
        body["exemplar_boxes"] = [[0, 0, width, height] for _ in body["exemplar_boxes"]]
    if "max_detections" in body or body["action"] in ("langsam", "sam3"):
        body["max_detections"] = RUNNABLE_MAX_DETECTIONS


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _pair(point) -> bool:
    return isinstance(point, list) and len(point) == 2 and all(_number(v) for v in point)

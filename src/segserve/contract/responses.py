"""The answers, as typed models: the services build them, docs/openapi.yaml's answer schemas are generated from
them, and clients may parse with them. Unknown fields are refused, so an answer cannot grow a field that the
document does not name. Optional fields are left out of an answer unless set (`dump_answer`).
"""

from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import BaseModel, ConfigDict, Field

# Why a prompt refinement fell back, as `warnings[].code` in answers (stable: clients branch on them).
NOT_CONFIGURED = "refine_prompt_not_configured"  # no key (none set, or its secret unreadable)
TIMEOUT = "refine_prompt_timeout"
UNREACHABLE = "refine_prompt_unreachable"
KEY_REFUSED = "refine_prompt_key_refused"  # 401/403
SERVER_ERROR = "refine_prompt_server_error"  # any other error status
MALFORMED_OUTPUT = "refine_prompt_malformed_output"
INTERNAL_ERROR = "refine_prompt_internal_error"
COOLING_DOWN = "refine_prompt_cooling_down"  # not asked: the LLM failed a moment ago (prompts/cooldown.py)
WARNING_CODES = (NOT_CONFIGURED, TIMEOUT, UNREACHABLE, KEY_REFUSED, SERVER_ERROR, MALFORMED_OUTPUT, INTERNAL_ERROR,
                 COOLING_DOWN)

Base64Png = Annotated[str, Field(description="base64 PNG (with `return_images`)")]


class _Closed(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ImageInfo(_Closed):
    id: str = Field(description="Content hash of the decoded pixels: send it as `image_id` instead of the image.")
    width: int
    height: int


class RleMask(_Closed):
    """COCO compressed RLE; `size` is [height, width]."""

    format: Literal["rle"]
    size: list[int] = Field(min_length=2, max_length=2)
    counts: str


class PngMask(_Closed):
    """base64 8-bit PNG, 255 inside."""

    format: Literal["png"]
    data: str


class PolygonsMask(_Closed):
    """COCO polygons on pixel edges, outer contours only."""

    format: Literal["polygons"]
    polygons: list[list[float]]


EncodedMask = Annotated[Union[RleMask, PngMask, PolygonsMask], Field(discriminator="format")]


class Mask(_Closed):
    """One mask: the model's score, its tight box, its area and its encoding."""

    score: float = Field(description="The model's confidence: SAM2's / SAM 3's predicted IoU, or SAM 3's "
                                     "detection score in concept mode.")
    box: Annotated[list[int], Field(min_length=4, max_length=4)] | None = Field(
        description="Tight box of the mask on pixel edges (x1, y1 exclusive); null when empty.")
    area: int = Field(ge=0)
    mask: EncodedMask


class LangSamMask(Mask):
    label: str = Field(description="The prompt words the detection matched.")
    detector_score: float = Field(ge=0, le=1)
    detector_box: list[float] = Field(min_length=4, max_length=4)


class Sam3Mask(Mask):
    label: str | None = Field(None, description="Concept mode: the phrase of `text_prompt` it answers "
                                                "(null for exemplar boxes alone). Absent for clicks.")
    detector_box: list[float] | None = Field(None, min_length=4, max_length=4, description=(
        "Concept mode: SAM 3's own box for the instance, xyxy in image pixels. Absent for clicks."))


class ModelInfo(_Closed):
    name: str
    version: str | None


class PromptWarning(_Closed):
    code: Literal[WARNING_CODES]  # type: ignore[valid-type]
    message: str = Field(min_length=1)


class _ImageResponse(_Closed):
    image: ImageInfo
    cache: Literal["hit", "miss"] = Field(description="`hit`: the image encoding came from the cache (the "
                                                      "image encoder did not run).")
    timings_ms: dict[str, float] = Field(default_factory=dict, description="Milliseconds per stage that ran, "
                                                                            "and `total`.")
    model: ModelInfo | None = None
    original: Base64Png | None = None
    overlay: Base64Png | None = None
    mask_only: Base64Png | None = None


class Sam2Response(_ImageResponse):
    action: Literal["sam2"]
    masks: list[Mask]


class LangSamResponse(_ImageResponse):
    action: Literal["langsam"]
    masks: list[LangSamMask]
    text_prompt: str = Field(description="As sent.")
    refined_prompt: str | None = Field(None, description="With `refine_prompt`: the LLM's phrases as given to the "
                                                         "detector; null when refinement fell back (see `warnings`).")
    warnings: list[PromptWarning] | None = Field(None, min_length=1, description="Present when something fell "
                                                 "back; the answer is still complete.")


class Sam3Response(_ImageResponse):
    action: Literal["sam3"]
    mode: Literal["concept", "click"] = Field(description="`concept`: every instance of `text_prompt` / the "
                                                          "exemplars, best first; `click`: one object's masks.")
    masks: list[Sam3Mask]
    text_prompt: str | None = Field(None, description="As sent (concept mode).")


class ModelState(_Closed):
    registered: bool
    workers: int
    ready_workers: int


class ReadinessResponse(_Closed):
    """200 with `ready` when every model has a READY worker, else 503 with `not_ready`."""

    action: Literal["ping"]
    status: Literal["ready", "not_ready"]
    models: dict[str, ModelState]


class HealthResponse(_Closed):
    status: Literal["Healthy", "Unhealthy"]
    models: dict[str, ModelState]
    error: str | None = Field(None, description="Why the check itself failed.")


class ExecutionParameters(_Closed):
    MaxConcurrentTransforms: int = Field(ge=1)
    BatchStrategy: Literal["MULTI_RECORD", "SINGLE_RECORD"]
    MaxPayloadInMB: int = Field(ge=1)


class ErrorDetail(_Closed):
    code: str = Field(description="Stable and machine-readable: branch on it.")
    message: str = Field(min_length=1, description="Safe to show; never a traceback.")
    field: str | None = Field(None, description="The request field at fault, dotted when nested.")
    request_id: str | None = Field(None, description="The server log's id of the request.")
    retry_after_s: int | None = Field(None, ge=1, description="Every 503: seconds to wait before retrying (also "
                                                              "the Retry-After header).")


class ErrorResponse(_Closed):
    error: ErrorDetail


class BatchErrorDetail(ErrorDetail):
    status: int = Field(description="The HTTP status this record would have had on its own.")


class BatchErrorLine(_Closed):
    """A JSON Lines record that failed, with the status it would have had."""

    error: BatchErrorDetail


Response = Union[LangSamResponse, Sam2Response, Sam3Response, ReadinessResponse]


def dump_answer(answer: BaseModel) -> bytes:
    """Compact JSON with the fields that were set: optional ones (renderings, warnings...) only when given."""
    return answer.model_dump_json(exclude_unset=True).encode()

"""The request schema: ONE definition of what every client may send, validated at the edge.

A pydantic discriminated union on `action`. Every bound is checked here (thresholds in [0, 1], labels in
{0, 1}, boxes ordered, exactly one image source); points inside the image are checked once the image
size is known (`Sam2Request.check_inside`). Unknown fields are refused rather than ignored, so a typo
never silently changes a result. Coordinates are pixels, boxes xyxy.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, ValidationInfo, model_validator

from segserve.errors import InvalidRequest
from segserve.models.grounding_dino import DetectionParams

ACTIONS = ("langsam", "sam2", "ping")
MASK_FORMATS = ("rle", "png", "polygons")
RENDERINGS = ("original", "overlay", "mask_only")
MAX_DETECTIONS_LIMIT = 200
MAX_POINTS = 64
_DETECTION = DetectionParams()

Probability = Annotated[float, Field(ge=0.0, le=1.0)]
Coordinate = Annotated[float, Field(ge=0.0, allow_inf_nan=False)]
Point = Annotated[list[Coordinate], Field(min_length=2, max_length=2)]  # [x, y]
Box = Annotated[list[Coordinate], Field(min_length=4, max_length=4)]  # [x0, y0, x1, y1]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ImageRequest(_Strict):
    """Exactly one image source: a URL (http, https, s3), base64 bytes (data: URLs too) or the `image.id` of an
    earlier answer (served from the SAM2 embedding cache);
    none when the image is the raw request body (validated with context {"raw_image": True})."""

    image_url: str | None = Field(None, min_length=1, max_length=4096)
    image: str | None = Field(None, min_length=1)
    image_id: str | None = Field(None, min_length=1, max_length=128)
    mask_format: Literal["rle", "png", "polygons"] = "rle"
    # The seed API's images: true for all three, or a list. Each comes back as a base64 PNG.
    return_images: bool | list[Literal["original", "overlay", "mask_only"]] = False

    @model_validator(mode="after")
    def _one_image_source(self, info: ValidationInfo):
        given = [name for name in ("image_url", "image", "image_id") if getattr(self, name) is not None]
        if info.context and info.context.get("raw_image"):
            if given:
                raise ValueError(f"the image is the request body; {', '.join(given)} cannot be given too")
        elif len(given) != 1:
            raise ValueError(f"give exactly one of image_url, image, image_id (got {', '.join(given) or 'none'})")
        return self

    @property
    def renderings(self) -> tuple[str, ...]:
        if self.return_images is True:
            return RENDERINGS
        return tuple(self.return_images or ())


class LangSamRequest(ImageRequest):
    action: Literal["langsam"]
    text_prompt: str = Field(min_length=1, max_length=2000)
    box_threshold: Probability = _DETECTION.box_threshold
    text_threshold: Probability = _DETECTION.text_threshold
    max_detections: int = Field(_DETECTION.max_detections, ge=1, le=MAX_DETECTIONS_LIMIT)
    refine_prompt: bool = _DETECTION.refine_prompt  # turn the text into detector phrases with an LLM first

    def detection_params(self, defaults: DetectionParams) -> DetectionParams:
        """The server's defaults with the fields this request set itself."""
        names = ("box_threshold", "text_threshold", "max_detections", "refine_prompt")
        given = {name: getattr(self, name) for name in names if name in self.model_fields_set}
        return replace(defaults, **given)


class Sam2Request(ImageRequest):
    action: Literal["sam2"]
    x: Coordinate | None = None  # one positive point, the seed API's form
    y: Coordinate | None = None
    points: list[Point] | None = Field(None, min_length=1, max_length=MAX_POINTS)
    labels: list[Literal[0, 1]] | None = None
    box: Box | None = None
    # Several objects at once, one mask each, answered in this order (langsam sends its detections so).
    # Empty: nothing to decode, the image is only encoded and cached (e.g. on upload, before any click).
    boxes: list[Box] | None = Field(None, max_length=MAX_DETECTIONS_LIMIT)
    multimask: bool = True
    # A mask from an earlier response (COCO RLE at image size) to refine with the new prompts.
    mask_input: dict | None = None

    @model_validator(mode="after")
    def _consistent_prompts(self):
        if (self.x is None) != (self.y is None):
            raise ValueError("x and y go together")
        if self.x is not None and self.points is not None:
            raise ValueError("give either x/y or points, not both")
        if self.points is not None and (self.labels is None or len(self.labels) != len(self.points)):
            raise ValueError("labels must have one entry (1 positive, 0 negative) per point")
        if self.points is None and self.labels is not None:
            raise ValueError("labels without points")
        if self.box is not None and not (self.box[0] < self.box[2] and self.box[1] < self.box[3]):
            raise ValueError("box must be [x0, y0, x1, y1] with x0 < x1 and y0 < y1")
        if self.boxes is not None:
            if self.x is not None or self.points is not None or self.box is not None or self.mask_input is not None:
                raise ValueError("boxes go alone: one mask per box, without points, box or mask_input")
            if any(not (b[0] <= b[2] and b[1] <= b[3]) for b in self.boxes):
                raise ValueError("each of boxes must be [x0, y0, x1, y1] with x0 <= x1 and y0 <= y1")
            return self
        if self.x is None and self.points is None and self.box is None and self.mask_input is None:
            raise ValueError("a sam2 request needs a prompt: x/y, points with labels, box, or mask_input")
        return self

    @property
    def point_prompts(self) -> tuple[list[list[float]], list[int]] | None:
        if self.x is not None:
            return [[self.x, self.y]], [1]
        if self.points is not None:
            return list(self.points), list(self.labels)
        return None

    def check_inside(self, height: int, width: int) -> None:
        """Prompts must lie on the image (known only once it is decoded)."""
        prompts = self.point_prompts
        field = "x" if self.x is not None else "points"
        for x, y in prompts[0] if prompts else []:
            if x > width or y > height:
                raise InvalidRequest(f"point ({x:g}, {y:g}) is outside the {width}x{height} image", field=field)
        for name, box in [("box", self.box)] * (self.box is not None) + [("boxes", b) for b in self.boxes or ()]:
            if box[2] > width or box[3] > height:
                raise InvalidRequest(f"box {list(box)} is outside the {width}x{height} image", field=name)


class PingRequest(_Strict):
    action: Literal["ping"]


Request = Annotated[Union[LangSamRequest, Sam2Request, PingRequest], Field(discriminator="action")]
_REQUEST = TypeAdapter(Request)


def parse_request(
    payload: object, strict: bool = True, raw_image: bool = False
) -> LangSamRequest | Sam2Request | PingRequest:
    """Validate a decoded JSON object. `strict=False` only for string-typed sources (custom attributes);
    `raw_image` when the image is the request body itself."""
    if not isinstance(payload, dict):
        raise InvalidRequest("the request body must be a JSON object")
    action = payload.get("action")
    if action not in ACTIONS:
        shown = "missing" if action is None else repr(action)
        raise InvalidRequest(f"action is {shown}; valid actions: {', '.join(ACTIONS)}", field="action")
    try:
        return _REQUEST.validate_python(payload, strict=strict, context={"raw_image": raw_image})
    except ValidationError as exc:
        raise _client_error(exc) from None


def _client_error(exc: ValidationError) -> InvalidRequest:
    """The first problem, phrased for a client: which field, what was wrong (no pydantic URLs)."""
    first = exc.errors(include_url=False)[0]
    location = [str(part) for part in first["loc"][1:]]  # [0] is the union member ("langsam", ...)
    field = ".".join(location) or None
    message = first["msg"].removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        message = "unknown field"
    more = f" (and {len(exc.errors()) - 1} more problems)" if len(exc.errors()) > 1 else ""
    return InvalidRequest(f"{field}: {message}{more}" if field else f"{message}{more}", field=field)

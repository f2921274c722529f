"""The request schema: ONE definition of what every client may send, validated at the edge.

A pydantic discriminated union on `action`. Every bound is checked here (thresholds in [0, 1], labels in
{0, 1}, boxes ordered, exactly one image source); points inside the image are checked once the image
size is known (`ClickRequest.check_inside`). Unknown fields are refused rather than ignored, so a typo
never silently changes a result. Coordinates are pixels, boxes xyxy.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Annotated, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, ValidationInfo, model_validator

from segserve.contract.errors import InvalidRequest

ACTIONS = ("langsam", "sam2", "sam3", "ping")
MASK_FORMATS = ("rle", "png", "polygons")
RENDERINGS = ("original", "overlay", "mask_only")
MAX_DETECTIONS_LIMIT = 200
MAX_POINTS = 64
MAX_EXEMPLARS = 32
MAX_PHRASES = 16  # sam3: each phrase is one detector pass on the shared encoding


@dataclass(frozen=True)
class DetectionParams:
    """langsam's choice of boxes: detector score above `box_threshold`, labelled by the prompt tokens above
    `text_threshold`, the best `max_detections` of them. The defaults are Lang-SAM's (and the cap ours).
    `refine_prompt`: the text is first turned into detector phrases by an LLM (segserve.prompts); the
    detector itself is given the prompt that results."""

    box_threshold: float = 0.3
    text_threshold: float = 0.25
    max_detections: int = 50
    refine_prompt: bool = False

    def __post_init__(self):
        if not (0.0 <= self.box_threshold <= 1.0 and 0.0 <= self.text_threshold <= 1.0):
            raise ValueError(f"thresholds must lie in [0, 1]: {self}")
        if self.max_detections < 1:
            raise ValueError(f"max_detections must be at least 1: {self}")


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


class ClickRequest(ImageRequest):
    """SAM's interactive prompts on one object, shared by sam2 and sam3's click mode."""

    x: Coordinate | None = None  # one positive point, the seed API's form
    y: Coordinate | None = None
    points: list[Point] | None = Field(None, min_length=1, max_length=MAX_POINTS)
    labels: list[Literal[0, 1]] | None = None
    box: Box | None = None
    multimask: bool = True
    # A mask from an earlier response (COCO RLE at image size) to refine with the new prompts.
    mask_input: dict | None = None

    @property
    def has_click(self) -> bool:
        return self.x is not None or self.points is not None or self.box is not None or self.mask_input is not None

    def _check_clicks(self) -> None:
        if (self.x is None) != (self.y is None):
            raise ValueError("x and y go together")
        if self.x is not None and self.points is not None:
            raise ValueError("give either x/y or points, not both")
        if self.points is not None and (self.labels is None or len(self.labels) != len(self.points)):
            raise ValueError("labels must have one entry (1 positive, 0 negative) per point")
        if self.points is None and self.labels is not None:
            raise ValueError("labels without points")
        if self.box is not None and not _ordered(self.box, strict=True):
            raise ValueError("box must be [x0, y0, x1, y1] with x0 < x1 and y0 < y1")

    @property
    def point_prompts(self) -> tuple[list[list[float]], list[int]] | None:
        if self.x is not None:
            return [[self.x, self.y]], [1]
        if self.points is not None:
            return list(self.points), list(self.labels)
        return None

    def _boxes_on_image(self) -> list[tuple[str, list[float]]]:
        """(field, box) for every box that must lie on the image."""
        return [("box", self.box)] if self.box is not None else []

    def check_inside(self, height: int, width: int) -> None:
        """Prompts must lie on the image (known only once it is decoded)."""
        prompts = self.point_prompts
        field = "x" if self.x is not None else "points"
        for x, y in prompts[0] if prompts else []:
            if x > width or y > height:
                raise InvalidRequest(f"point ({x:g}, {y:g}) is outside the {width}x{height} image", field=field)
        for name, box in self._boxes_on_image():
            if box[2] > width or box[3] > height:
                raise InvalidRequest(f"{name} {list(box)} is outside the {width}x{height} image", field=name)


class Sam2Request(ClickRequest):
    action: Literal["sam2"]
    # Several objects at once, one mask each, answered in this order (langsam sends its detections so).
    # Empty: nothing to decode, the image is only encoded and cached (e.g. on upload, before any click).
    boxes: list[Box] | None = Field(None, max_length=MAX_DETECTIONS_LIMIT)

    @model_validator(mode="after")
    def _consistent_prompts(self):
        self._check_clicks()
        if self.boxes is not None:
            if self.has_click:
                raise ValueError("boxes go alone: one mask per box, without points, box or mask_input")
            if any(not _ordered(b, strict=False) for b in self.boxes):
                raise ValueError("each of boxes must be [x0, y0, x1, y1] with x0 <= x1 and y0 <= y1")
        elif not self.has_click:
            raise ValueError("a sam2 request needs a prompt: x/y, points with labels, box, or mask_input")
        return self

    def _boxes_on_image(self) -> list[tuple[str, list[float]]]:
        return super()._boxes_on_image() + [("boxes", b) for b in self.boxes or ()]


_CONCEPT_ONLY = ("score_threshold", "mask_threshold", "max_detections")


class Sam3Request(ClickRequest):
    """SAM 3, two modes on one image encoding. Concept: `text_prompt` and/or `exemplar_boxes` → every instance.
    Click: sam2's fields and rules → one object, answered by SAM 3's tracker."""

    action: Literal["sam3"]
    text_prompt: str | None = Field(None, min_length=1, max_length=2000)
    exemplar_boxes: list[Box] | None = Field(None, min_length=1, max_length=MAX_EXEMPLARS)
    exemplar_labels: list[Literal[0, 1]] | None = None  # 1 = more like this, 0 = not this; default all 1
    score_threshold: Probability = 0.5
    mask_threshold: Probability = 0.5
    max_detections: int = Field(50, ge=1, le=MAX_DETECTIONS_LIMIT)

    @model_validator(mode="after")
    def _one_mode(self):
        concept = self.text_prompt is not None or self.exemplar_boxes is not None
        if concept and self.has_click:
            raise ValueError("text_prompt/exemplar_boxes (every instance) and x/y, points, box or mask_input "
                             "(one object) go in separate requests")
        if not concept and not self.has_click:
            raise ValueError("a sam3 request needs a prompt: text_prompt and/or exemplar_boxes, "
                             "or x/y, points with labels, box, or mask_input")
        if concept:
            if "multimask" in self.model_fields_set:
                raise ValueError("multimask is for clicks (x/y, points, box, mask_input), not text_prompt")
            if self.text_prompt is not None and not self.phrases:
                raise ValueError("text_prompt has no words")
            if len(self.phrases) > MAX_PHRASES:
                raise ValueError(f"text_prompt has {len(self.phrases)} phrases; at most {MAX_PHRASES}")
            self._check_exemplars()
        else:
            self._check_clicks()
            given = [name for name in _CONCEPT_ONLY if name in self.model_fields_set]
            if given or self.exemplar_labels is not None:
                raise ValueError(f"only text_prompt or exemplar_boxes take {', '.join(given or ['exemplar_labels'])}")
        return self

    def _check_exemplars(self) -> None:
        if self.exemplar_labels is not None:
            if self.exemplar_boxes is None or len(self.exemplar_labels) != len(self.exemplar_boxes):
                raise ValueError("exemplar_labels must have one entry (1 like this, 0 not this) per exemplar box")
        if any(not _ordered(b, strict=True) for b in self.exemplar_boxes or ()):
            raise ValueError("each of exemplar_boxes must be [x0, y0, x1, y1] with x0 < x1 and y0 < y1")

    @property
    def phrases(self) -> list[str]:
        """The concepts of text_prompt: "Bus. yellow  car." → ["bus", "yellow car"], duplicates once."""
        words = (" ".join(part.split()).lower() for part in (self.text_prompt or "").split("."))
        return list(dict.fromkeys(phrase for phrase in words if phrase))

    @property
    def exemplars(self) -> tuple[list[list[float]], list[int]] | None:
        """(boxes, labels) with the labels' default of all 1, or None without exemplar boxes."""
        if self.exemplar_boxes is None:
            return None
        return list(self.exemplar_boxes), list(self.exemplar_labels or [1] * len(self.exemplar_boxes))

    def _boxes_on_image(self) -> list[tuple[str, list[float]]]:
        return super()._boxes_on_image() + [("exemplar_boxes", b) for b in self.exemplar_boxes or ()]


def _ordered(box: list[float], strict: bool) -> bool:
    if strict:
        return box[0] < box[2] and box[1] < box[3]
    return box[0] <= box[2] and box[1] <= box[3]


class PingRequest(_Strict):
    action: Literal["ping"]


Request = Annotated[Union[LangSamRequest, Sam2Request, Sam3Request, PingRequest], Field(discriminator="action")]
_REQUEST = TypeAdapter(Request)


def parse_request(
    payload: object, strict: bool = True, raw_image: bool = False
) -> LangSamRequest | Sam2Request | Sam3Request | PingRequest:
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

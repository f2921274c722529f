"""langsam's client of the sam2 model: box masks from the ONE process that owns SAM2 and its embedding cache.

The langsam model runs GroundingDINO only. For masks it asks the sam2 model (over loopback) with the
detected boxes: first by `image_id` (tiny body; a hit when the image was clicked or prompted before), and
on a 404 again with the image file itself as the raw body, the boxes in its custom attributes. So text
prompts and clicks on one image share one encoding, and SAM2 is loaded once per GPU worker, not twice.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable

from segserve.contract.wire import CUSTOM_ATTRIBUTES, JSON, dump_json
from segserve.contract.requests import ImageRequest
from segserve.contract.responses import Sam2Response
from segserve.contract.errors import ImageNotCached, InvalidRequest, NotReady, PayloadTooLarge, ServiceError
from segserve.media.image_loading import LoadedImage
from segserve.media.images import decode_image, encode_png
from segserve.models.runtime import StageTimer
from segserve.contract.wire import Reply

# (model name, body, headers) → the model's response: LoopbackClient in production, an Invoker in unit tests
Post = Callable[[str, bytes, dict], Reply]
# TorchServe's HTTP codec refuses request headers over 8 KiB; the boxes travel in one of them on a miss.
_MAX_ATTRIBUTES = 7500
_RETRY_AFTER_S = 5  # the sam2 model (re)starting: TorchServe retries a worker after 1, 1, 2, 3, 5... s


class Sam2Client:
    def __init__(self, post: Post, model_for: Callable[[str], str]):
        self.post = post
        self.model_for = model_for  # image id → the sam2 model (replica) that holds its embedding

    def image(self, image_id: str, timer: StageTimer) -> LoadedImage:
        """The pixels of a cached image (the detector needs them), as a lossless PNG from the sam2 model."""
        # Its stages are not langsam's (it renders a PNG): langsam times the whole fetch as its load_image.
        try:
            answer = self._json(image_id, {"boxes": [], "return_images": ["original"]}, StageTimer(timer.runtime))
        except ServiceError as error:
            if error.status != 413:
                raise
            raise PayloadTooLarge("this image is too large to detect on by image_id (its pixels do not fit in one "
                                  "answer of the sam2 model): send the image itself", "image_id") from None
        if answer is None:
            raise ImageNotCached(image_id)
        png = base64.b64decode(answer.original)
        return LoadedImage(decode_image(png, max_pixels=answer.image.width * answer.image.height), image_id, png)

    def segment(self, image: LoadedImage, boxes: list[list[float]], request: ImageRequest, timer: StageTimer) -> Sam2Response:
        """The sam2 answer for one mask per box (in box order), its stage timings added to `timer`."""
        options = {"mask_format": request.mask_format, "return_images": list(request.renderings)}
        answer = self._json(image.image_id, {"boxes": boxes, **options}, timer)
        if answer is not None:
            return answer
        attributes = ";".join(f"{key}={_attribute(value)}"
                              for key, value in {"action": "sam2", "boxes": boxes, **options}.items())
        if len(attributes) > _MAX_ATTRIBUTES:
            raise InvalidRequest("too many detections to segment at once: lower max_detections", "max_detections")
        headers = {"Content-Type": "application/x-image", CUSTOM_ATTRIBUTES: attributes}
        response = self._post(image.image_id, image.source or encode_png(image.pixels), headers)
        return self._answer(response, timer)

    def _json(self, image_id: str, fields: dict, timer: StageTimer) -> Sam2Response | None:
        """The sam2 answer by image_id, or None when the sam2 model does not hold the image."""
        body = dump_json({"action": "sam2", "image_id": image_id, **fields})
        response = self._post(image_id, body, {"Content-Type": JSON})
        if response.status == 404 and _error(response).get("code") == "not_found":
            return None
        return self._answer(response, timer)

    def _post(self, image_id: str, body: bytes, headers: dict) -> Reply:
        model = self.model_for(image_id)
        try:
            return self.post(model, body, headers)
        except OSError as exc:
            raise NotReady(f"model {model!r} (SAM2 for langsam) did not answer: {exc.__class__.__name__}",
                           _RETRY_AFTER_S) from exc

    @staticmethod
    def _answer(response: Reply, timer: StageTimer) -> Sam2Response:
        if response.status != 200:
            raise _as_service_error(response)
        answer = json.loads(response.body)
        answer.pop("model", None)  # the langsam model names itself
        for stage, ms in answer.pop("timings_ms", {}).items():
            if stage != "total":  # sam2's load_image decodes the image langsam sent: not langsam's own
                name = "sam2_load_image" if stage == "load_image" else stage
                timer.stages[name] = timer.stages.get(name, 0.0) + ms
        return Sam2Response.model_validate(answer)


def _attribute(value) -> str:
    """A custom-attribute value: strings as they are, lists as compact JSON (what the parser reads back)."""
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))


def _error(response: Reply) -> dict:
    try:
        error = json.loads(response.body).get("error")
    except (ValueError, AttributeError):
        return {}
    return error if isinstance(error, dict) else {}


def _as_service_error(response: Reply) -> ServiceError:
    """sam2's own error (its status, code and message) for langsam's client, or TorchServe's as not ready."""
    error = _error(response)
    if not error:
        return NotReady(f"the sam2 model is not ready (TorchServe answered {response.status}); try again shortly",
                        _RETRY_AFTER_S)
    message = error.get("message", "the sam2 model failed")
    if "retry_after_s" in error:  # a 503 of sam2's own: keep its wait (and so its Retry-After header)
        passed = NotReady(message, error["retry_after_s"], error.get("field"))
    else:
        passed = ServiceError(message, error.get("field"))
    passed.status, passed.code = response.status, error.get("code", ServiceError.code)
    return passed

"""One service per action: a validated request in, a JSON-ready response body out.

A service owns its pipeline and image loader (built once per worker); it turns request fields into
pipeline prompts and pipeline results into the documented response (docs/API.md).
"""

from __future__ import annotations

import numpy as np

from segserve.errors import InvalidRequest
from segserve.media.image_loading import ImageLoader, LoadedImage
from segserve.models.grounding_dino import DetectionParams
from segserve.models.langsam_pipeline import LangSamPipeline
from segserve.media.masks import decode_rle
from segserve.api.responses import mask_entry, renderings
from segserve.models.runtime import StageTimer
from segserve.models.sam2_pipeline import Sam2Pipeline, Sam2Prompt, logits_from_mask
from segserve.api.schemas import ImageRequest, LangSamRequest, Sam2Request


def _body(action: str, request: ImageRequest, image: LoadedImage, masks: list, entries: list, timer) -> dict:
    body = {
        "action": action,
        "image": {"id": image.image_id, "width": image.width, "height": image.height},
        "masks": entries,
    }
    if request.renderings:
        with timer.stage("render_images"):
            body.update(renderings(image.pixels, masks, request.renderings))
    return body


class Sam2Service:
    action = "sam2"

    def __init__(self, pipeline: Sam2Pipeline, loader: ImageLoader):
        self.pipeline = pipeline
        self.loader = loader

    def run(self, request: Sam2Request, raw_image: bytes | None, timer: StageTimer) -> dict:
        with timer.stage("load_image"):
            image = self.loader.load(request, raw_image)
        request.check_inside(image.height, image.width)
        prompt = self._prompt(request, image)
        embedding = self.pipeline.encode(image.pixels, timer)
        prediction = self.pipeline.predict(embedding, prompt, request.multimask, timer)
        with timer.stage("encode_masks"):
            order = np.argsort(-prediction.scores, kind="stable")  # best first
            masks = [prediction.masks[i] for i in order]
            entries = [mask_entry(prediction.masks[i], prediction.scores[i], request.mask_format) for i in order]
        return _body(self.action, request, image, masks, entries, timer)

    @staticmethod
    def _prompt(request: Sam2Request, image: LoadedImage) -> Sam2Prompt:
        points = request.point_prompts
        mask_logits = None
        if request.mask_input is not None:
            mask = decode_rle(request.mask_input, field="mask_input")
            if mask.shape != (image.height, image.width):
                raise InvalidRequest(
                    f"mask_input is {mask.shape[1]}x{mask.shape[0]}; the image is {image.width}x{image.height}",
                    field="mask_input",
                )
            mask_logits = logits_from_mask(mask)
        return Sam2Prompt(
            points=np.array(points[0], dtype=np.float32) if points else None,
            labels=np.array(points[1], dtype=np.int64) if points else None,
            box=np.array(request.box, dtype=np.float32) if request.box is not None else None,
            mask_logits=mask_logits,
        )


class LangSamService:
    action = "langsam"

    def __init__(self, pipeline: LangSamPipeline, loader: ImageLoader, defaults: DetectionParams = DetectionParams()):
        self.pipeline = pipeline
        self.loader = loader
        self.defaults = defaults  # the model-config's, for fields a request leaves out

    def run(self, request: LangSamRequest, raw_image: bytes | None, timer: StageTimer) -> dict:
        if request.refine_prompt:
            raise InvalidRequest("refine_prompt needs an LLM, and none is configured on this endpoint",
                                 field="refine_prompt")
        with timer.stage("load_image"):
            image = self.loader.load(request, raw_image)
        params = request.detection_params(self.defaults)
        objects = self.pipeline.predict(image.pixels, request.text_prompt, params, timer=timer)
        with timer.stage("encode_masks"):
            entries = [
                {
                    **mask_entry(obj.mask, obj.mask_score, request.mask_format),
                    "label": obj.detection.label,
                    "detector_score": round(obj.detection.score, 6),
                    "detector_box": [round(v, 2) for v in obj.detection.box],
                }
                for obj in objects
            ]
        body = _body(self.action, request, image, [obj.mask for obj in objects], entries, timer)
        body["text_prompt"] = request.text_prompt
        return body

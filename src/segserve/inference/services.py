"""One service per action: a validated request in, a typed answer (segserve.contract.responses) out.

A service owns its pipeline and image loader (built once per worker); it turns request fields into
pipeline prompts and pipeline results into the documented answer (docs/API.md).
"""

from __future__ import annotations

import numpy as np

from segserve.contract.errors import ImageNotCached, InvalidRequest
from segserve.contract.requests import ClickRequest, DetectionParams, ImageRequest, LangSamRequest, Sam2Request
from segserve.contract.responses import ImageInfo, LangSamResponse, LangSamMask, PromptWarning, Sam2Response
from segserve.media.image_loading import ImageLoader, LoadedImage
from segserve.models.embedding_cache import CachedImage, EmbeddingCache, NullEmbeddingCache
from segserve.models.grounding_dino import GroundingDinoDetector
from segserve.prompts.refinement import NullRefiner, PromptRefiner
from segserve.media.masks import decode_rle
from segserve.inference.answers import mask_entry, renderings
from segserve.inference.sam2_client import Sam2Client
from segserve.models.runtime import StageTimer
from segserve.models.sam2_pipeline import Sam2Pipeline, Sam2Prompt, logits_from_mask


def _sam2_answer(request: ImageRequest, image_id: str, entry: CachedImage, hit: bool, masks: list, entries: list,
                 timer: StageTimer) -> Sam2Response:
    images = {}
    if request.renderings:
        with timer.stage("render_images"):
            images = renderings(entry.pixels, masks, request.renderings)
    return Sam2Response(action="sam2", image=ImageInfo(id=image_id, width=entry.width, height=entry.height),
                      cache="hit" if hit else "miss", masks=entries, **images)


class Sam2Service:
    """Clicks on one encoding: the image's embedding comes from the cache when this model has it."""

    action = "sam2"

    def __init__(self, pipeline: Sam2Pipeline, loader: ImageLoader, cache: EmbeddingCache | None = None):
        self.pipeline = pipeline
        self.loader = loader
        self.cache = cache or NullEmbeddingCache()

    def run(self, request: Sam2Request, raw_image: bytes | None, timer: StageTimer) -> Sam2Response:
        image = None
        if request.image_id is None:
            with timer.stage("load_image"):
                image = self.loader.load(request, raw_image)
        return self._answer(request, image, timer)

    def _answer(self, request: Sam2Request, image: LoadedImage | None, timer: StageTimer) -> Sam2Response:
        """The answer for `image`, or for `request.image_id` from the cache when `image` is None."""
        image_id, entry, pixels = cached_image(self.cache, request, image)
        hit = entry is not None
        prompt = None if request.boxes is not None else click_prompt(request, *pixels.shape[:2], logits_from_mask)
        if not hit:
            entry = encode_into(self.cache, image_id, pixels, self.pipeline.encode, timer)
        if prompt is None and not request.boxes:  # "boxes": [] only encodes and caches the image
            return _sam2_answer(request, image_id, entry, hit, [], [], timer)
        if prompt is None:
            boxes = np.array(request.boxes, np.float32)
            prediction = self.pipeline.predict_boxes(entry.embedding, boxes, timer)
            order = np.arange(len(prediction.scores))  # box order: entry i is box i
        else:
            prediction = self.pipeline.predict(entry.embedding, prompt, request.multimask, timer)
            order = np.argsort(-prediction.scores, kind="stable")  # best first
        with timer.stage("encode_masks"):
            masks = [prediction.masks[i] for i in order]
            entries = [mask_entry(prediction.masks[i], prediction.scores[i], request.mask_format) for i in order]
        return _sam2_answer(request, image_id, entry, hit, masks, entries, timer)


def cached_image(cache: EmbeddingCache, request: ClickRequest, image: LoadedImage | None):
    """(image id, its cache entry or None, its pixels) for `image`, or for `request.image_id` when `image`
    is None (an unknown id is a 404). The prompt is checked against the image here: before any encoder runs."""
    image_id = image.image_id if image is not None else request.image_id
    entry = cache.get(image_id)
    if entry is None and image is None:
        raise ImageNotCached(image_id)
    pixels = entry.pixels if entry is not None else image.pixels
    request.check_inside(*pixels.shape[:2])
    return image_id, entry, pixels


def encode_into(cache: EmbeddingCache, image_id: str, pixels: np.ndarray, encode, timer: StageTimer) -> CachedImage:
    entry = CachedImage(encode(pixels, timer), pixels)
    cache.put(image_id, entry)
    return entry


def click_prompt(request: ClickRequest, height: int, width: int, to_logits) -> Sam2Prompt | None:
    """The click fields as a prompt (None without any); `to_logits` turns mask_input into the model's logits."""
    if not request.has_click:
        return None
    points = request.point_prompts
    mask_logits = None
    if request.mask_input is not None:
        mask = decode_rle(request.mask_input, field="mask_input")
        if mask.shape != (height, width):
            raise InvalidRequest(
                f"mask_input is {mask.shape[1]}x{mask.shape[0]}; the image is {width}x{height}", field="mask_input",
            )
        mask_logits = to_logits(mask)
    return Sam2Prompt(
        points=np.array(points[0], dtype=np.float32) if points else None,
        labels=np.array(points[1], dtype=np.int64) if points else None,
        box=np.array(request.box, dtype=np.float32) if request.box is not None else None,
        mask_logits=mask_logits,
    )


class LangSamService:
    """Text → GroundingDINO boxes here; their masks from the sam2 model, which owns SAM2 and its cache."""

    action = "langsam"

    def __init__(self, detector: GroundingDinoDetector, sam2: Sam2Client, loader: ImageLoader,
                 defaults: DetectionParams = DetectionParams(), refiner: PromptRefiner = NullRefiner()):
        self.detector = detector
        self.sam2 = sam2
        self.loader = loader
        self.defaults = defaults  # the model-config's, for fields a request leaves out
        self.refiner = refiner  # used when refine_prompt is true; falls back to the raw text with a warning

    def run(self, request: LangSamRequest, raw_image: bytes | None, timer: StageTimer) -> LangSamResponse:
        with timer.stage("load_image"):
            if request.image_id is not None:
                image = self.sam2.image(request.image_id, timer)
            else:
                image = self.loader.load(request, raw_image)  # first: a bad image costs no LLM call
        params = request.detection_params(self.defaults)
        prompt = self.refiner.refine(request.text_prompt, timer) if params.refine_prompt else None
        detections = self.detector.detect(image.pixels, prompt.detector_prompt if prompt else request.text_prompt,
                                          params, timer)
        # Even with nothing detected: the image gets encoded and cached, so the answer's image_id takes clicks.
        # 0.1 px is far below SAM2's resolution and keeps the boxes short enough for a header on a miss.
        boxes = [[round(v, 1) for v in detection.box] for detection in detections]
        answer = self.sam2.segment(image, boxes, request, timer)
        masks = [
            LangSamMask(**entry.model_dump(), label=detection.label, detector_score=round(detection.score, 6),
                        detector_box=[round(v, 2) for v in detection.box])
            for entry, detection in zip(answer.masks, detections)
        ]
        fields = answer.model_dump(exclude_unset=True, exclude={"action", "masks"})
        if prompt:
            fields["refined_prompt"] = prompt.refined_prompt  # null when it fell back (see warnings)
            if prompt.warnings:
                fields["warnings"] = [PromptWarning(code=w.code, message=w.message) for w in prompt.warnings]
        return LangSamResponse(action="langsam", masks=masks, text_prompt=request.text_prompt, **fields)

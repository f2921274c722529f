"""The sam3 action: concept mode (phrases and/or exemplar boxes → every instance) and clicks, on one encoding.

The image's SAM 3 encoding is cached by image id like SAM2's, so a second phrase or a click on a detection
runs no vision encoder (the answer's `cache` says "hit").
"""

from __future__ import annotations

import numpy as np

from segserve.contract.requests import Sam3Request
from segserve.contract.responses import ImageInfo, Sam3Mask, Sam3Response
from segserve.inference.answers import mask_entry, renderings
from segserve.inference.services import cached_image, click_prompt, encode_into
from segserve.media.image_loading import ImageLoader
from segserve.models.embedding_cache import EmbeddingCache, NullEmbeddingCache
from segserve.models.runtime import StageTimer
from segserve.models.sam3_pipeline import Sam3Pipeline


class Sam3Service:
    action = "sam3"

    def __init__(self, pipeline: Sam3Pipeline, loader: ImageLoader, cache: EmbeddingCache | None = None):
        self.pipeline = pipeline
        self.loader = loader
        self.cache = cache or NullEmbeddingCache()

    def run(self, request: Sam3Request, raw_image: bytes | None, timer: StageTimer) -> Sam3Response:
        image = None
        if request.image_id is None:
            with timer.stage("load_image"):
                image = self.loader.load(request, raw_image)
        image_id, entry, pixels = cached_image(self.cache, request, image)
        hit = entry is not None
        height, width = pixels.shape[:2]
        prompt = click_prompt(request, height, width, self.pipeline.mask_logits)
        if not hit:
            entry = encode_into(self.cache, image_id, pixels, self.pipeline.encode, timer)
        if prompt is None:
            masks, entries = self._concept(request, entry.embedding, timer)
        else:
            prediction = self.pipeline.click(entry.embedding, prompt, request.multimask, timer)
            with timer.stage("encode_masks"):
                order = np.argsort(-prediction.scores, kind="stable")  # best first
                masks = [prediction.masks[i] for i in order]
                entries = [mask_entry(prediction.masks[i], prediction.scores[i], request.mask_format, Sam3Mask)
                           for i in order]
        images = {}
        if request.renderings:
            with timer.stage("render_images"):
                images = renderings(pixels, masks, request.renderings)
        concept = prompt is None
        return Sam3Response(
            action="sam3", mode="concept" if concept else "click",
            image=ImageInfo(id=image_id, width=width, height=height), cache="hit" if hit else "miss",
            masks=entries, **({"text_prompt": request.text_prompt} if concept else {}), **images,
        )

    def _concept(self, request: Sam3Request, encoding, timer: StageTimer):
        phrases = request.phrases
        found = self.pipeline.detect(encoding, phrases, request.exemplars, request.score_threshold,
                                     request.mask_threshold, request.max_detections, timer)
        with timer.stage("encode_masks"):
            entries = [
                mask_entry(found.masks[i], found.scores[i], request.mask_format, Sam3Mask,
                           label=phrases[found.phrase_index[i]] if phrases else None,
                           detector_box=[round(float(v), 2) for v in found.boxes[i]])
                for i in range(len(found.scores))
            ]
        return list(found.masks), entries

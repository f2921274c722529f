"""Lang-SAM: a text prompt → GroundingDINO boxes → one SAM2 mask per box, on ONE image encoding.

The algorithm of luca-medeiros/lang-segment-anything (not on PyPI), written here over our own
detector and SAM2 pipeline: boxes chosen by `DetectionParams`, each box decoded by SAM2 with a single mask. Nothing detected is an empty result.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from segserve.contract.requests import DetectionParams
from segserve.models.grounding_dino import Detection, GroundingDinoDetector
from segserve.media.masks import mask_bbox
from segserve.models.runtime import Runtime, StageTimer
from segserve.models.sam2_pipeline import ImageEmbedding, Sam2Pipeline
from segserve.weights.bundle import WeightsBundle


@dataclass(frozen=True, eq=False)
class SegmentedObject:
    detection: Detection
    mask: np.ndarray  # (H, W) bool
    mask_score: float  # SAM2's predicted IoU

    @property
    def mask_box(self) -> tuple[int, int, int, int] | None:
        return mask_bbox(self.mask)


class LangSamPipeline:
    def __init__(self, detector: GroundingDinoDetector, segmenter: Sam2Pipeline):
        self.detector = detector
        self.segmenter = segmenter

    @classmethod
    def from_bundle(
        cls, bundle: WeightsBundle, runtime: Runtime | None = None, compile_encoder: bool = False
    ) -> "LangSamPipeline":
        runtime = runtime or Runtime.select()
        return cls(
            GroundingDinoDetector.from_bundle(bundle, runtime),
            Sam2Pipeline.from_bundle(bundle, runtime, compile_encoder),
        )

    def predict(
        self,
        image: np.ndarray,
        text_prompt: str,
        params: DetectionParams = DetectionParams(),
        embedding: ImageEmbedding | None = None,
        timer: StageTimer | None = None,
    ) -> list[SegmentedObject]:
        """Objects matching the prompt, best detector score first. `embedding` skips the image encoder
        when the caller already has it (e.g. from a cache); it is computed only if something was detected."""
        detections = self.detector.detect(image, text_prompt, params, timer)
        if not detections:
            return []
        if embedding is None:
            embedding = self.segmenter.encode(image, timer)
        boxes = np.array([d.box for d in detections], dtype=np.float32)
        prediction = self.segmenter.predict_boxes(embedding, boxes, timer)
        return [
            SegmentedObject(detection, mask, float(score))
            for detection, mask, score in zip(detections, prediction.masks, prediction.scores)
        ]

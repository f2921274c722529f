"""Lang-SAM: text → GroundingDINO boxes → SAM2 masks on one encoding, against the reference predictor."""

from __future__ import annotations

import numpy as np
import pytest

from segserve.contract.requests import DetectionParams
from segserve.models.langsam_pipeline import LangSamPipeline
from segserve.models.runtime import StageTimer
from tests.unit.test_sam2_parity import PIXEL_TOLERANCE


@pytest.fixture(scope="module")
def langsam(detector, sam2_pipeline):
    return LangSamPipeline(detector, sam2_pipeline)


def test_each_detection_gets_the_reference_mask(langsam, scene):
    from sam2.sam2_image_predictor import SAM2ImagePredictor

    timer = StageTimer(langsam.segmenter.runtime)
    objects = langsam.predict(scene, "black jeans. a dog", DetectionParams(max_detections=4), timer=timer)
    assert len(objects) == 4
    assert set(timer.stages) == {"grounding_dino", "sam2_image_encoder", "sam2_mask_decoder"}

    detections = langsam.detector.detect(scene, "black jeans. a dog", DetectionParams(max_detections=4))
    assert [o.detection for o in objects] == detections
    predictor = SAM2ImagePredictor(langsam.segmenter.model)
    predictor.set_image(scene)
    masks, scores, _ = predictor.predict(box=np.array([d.box for d in detections]), multimask_output=False)
    for obj, mask, score in zip(objects, masks[:, 0], scores[:, 0]):
        assert obj.mask.shape == scene.shape[:2] and obj.mask.dtype == bool
        assert np.mean(obj.mask != (mask > 0)) <= PIXEL_TOLERANCE
        assert obj.mask_score == pytest.approx(float(score), abs=1e-6)


def test_nothing_detected_skips_the_image_encoder(langsam, scene):
    timer = StageTimer(langsam.segmenter.runtime)
    assert langsam.predict(scene, "a dog", DetectionParams(box_threshold=1.0), timer=timer) == []
    assert "sam2_image_encoder" not in timer.stages


def test_a_given_embedding_is_reused(langsam, scene):
    embedding = langsam.segmenter.encode(scene)
    timer = StageTimer(langsam.segmenter.runtime)
    objects = langsam.predict(scene, "a dog", DetectionParams(max_detections=2), embedding=embedding, timer=timer)
    assert len(objects) == 2 and "sam2_image_encoder" not in timer.stages


def test_from_bundle_loads_both_models(tiny_bundle):
    from segserve.models.runtime import Runtime

    pipeline = LangSamPipeline.from_bundle(tiny_bundle, Runtime.select("cpu"))
    assert pipeline.detector.model.config.model_type == "grounding-dino"
    assert pipeline.segmenter.model.image_size == 1024

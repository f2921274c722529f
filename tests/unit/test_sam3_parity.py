"""Our SAM 3 pipeline against transformers' own path, on the same random weights (the tiny bundle's sam3/).

Concept mode: `Sam3Model(**Sam3Processor(...))` + `post_process_instance_segmentation`, then the top
`max_detections` by score. Clicks: `Sam3TrackerModel` + `Sam3TrackerProcessor.post_process_masks`.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from segserve.models.sam2_pipeline import Sam2Prompt

SCORE_FLOOR = 0.02  # random weights score every query near 0.1: a floor that keeps most, drops some


@pytest.fixture(scope="module")
def reference(tiny_bundle):
    from transformers import Sam3Model, Sam3Processor, Sam3TrackerModel, Sam3TrackerProcessor

    folder = tiny_bundle.sam3_dir
    load = {"local_files_only": True}
    return {
        "detector": Sam3Model.from_pretrained(folder, **load).eval(),
        "processor": Sam3Processor.from_pretrained(folder, **load),
        "tracker": Sam3TrackerModel.from_pretrained(folder, **load).eval(),
        "tracker_processor": Sam3TrackerProcessor.from_pretrained(folder, **load),
    }


@pytest.fixture(scope="module")
def encoding(sam3_pipeline, scene):
    return sam3_pipeline.encode(scene)


def reference_detections(reference, scene, text, boxes=None, labels=None, threshold=SCORE_FLOOR, limit=50):
    processor = reference["processor"]
    extra = {"input_boxes": [boxes], "input_boxes_labels": [labels]} if boxes else {}
    inputs = processor(images=Image.fromarray(scene), text=text, return_tensors="pt", **extra)
    with torch.no_grad():
        outputs = reference["detector"](**inputs)
    result = processor.post_process_instance_segmentation(
        outputs, threshold=threshold, mask_threshold=0.5, target_sizes=inputs["original_sizes"].tolist())[0]
    order = torch.argsort(result["scores"], descending=True, stable=True)[:limit]
    return result["scores"][order].numpy(), result["boxes"][order].numpy(), result["masks"][order].numpy().astype(bool)


def assert_same_detections(ours, scores, boxes, masks):
    assert len(ours.scores) == len(scores) > 0
    np.testing.assert_allclose(ours.scores, scores, rtol=0, atol=1e-4)
    np.testing.assert_allclose(ours.boxes, boxes, rtol=0, atol=0.5)
    assert ours.masks.shape == masks.shape and ours.masks.dtype == bool
    union = (ours.masks | masks).sum(axis=(1, 2))
    iou = (ours.masks & masks).sum(axis=(1, 2)) / np.maximum(union, 1)
    assert iou.min() >= 0.99


def test_one_encoding_feeds_the_detector_and_the_tracker(sam3_pipeline, encoding, scene):
    assert encoding.image_size == scene.shape[:2]
    assert sam3_pipeline.tracker.vision_encoder.backbone is sam3_pipeline.detector.vision_encoder.backbone
    assert encoding.nbytes > 0


def test_text_prompt_equals_the_reference(sam3_pipeline, encoding, reference, scene):
    ours = sam3_pipeline.detect(encoding, ["black dog"], score_threshold=SCORE_FLOOR)
    assert_same_detections(ours, *reference_detections(reference, scene, "black dog"))
    assert set(ours.phrase_index) == {0}


def test_exemplar_boxes_alone_equal_the_reference(sam3_pipeline, encoding, reference, scene):
    boxes, labels = [[100.0, 90.0, 220.0, 250.0]], [1]
    ours = sam3_pipeline.detect(encoding, [], (boxes, labels), score_threshold=SCORE_FLOOR)
    assert_same_detections(ours, *reference_detections(reference, scene, None, boxes, labels))


def test_text_with_a_negative_exemplar_equals_the_reference(sam3_pipeline, encoding, reference, scene):
    boxes, labels = [[100.0, 90.0, 220.0, 250.0], [380.0, 230.0, 560.0, 420.0]], [1, 0]
    ours = sam3_pipeline.detect(encoding, ["red car"], (boxes, labels), score_threshold=SCORE_FLOOR)
    expected = reference_detections(reference, scene, "red car", boxes, labels)
    assert_same_detections(ours, *expected)
    plain = sam3_pipeline.detect(encoding, ["red car"], score_threshold=SCORE_FLOOR)
    assert not np.allclose(plain.scores[:5], ours.scores[:5])  # the exemplars changed the answer


def test_several_phrases_are_the_merge_of_each_phrase_alone(sam3_pipeline, encoding, reference, scene):
    ours = sam3_pipeline.detect(encoding, ["dog", "red car"], score_threshold=SCORE_FLOOR, max_detections=200)
    each = [reference_detections(reference, scene, phrase, limit=200) for phrase in ("dog", "red car")]
    scores = np.concatenate([each[0][0], each[1][0]])
    order = np.argsort(-scores, kind="stable")
    np.testing.assert_allclose(ours.scores, scores[order], rtol=0, atol=1e-4)
    phrase = np.repeat([0, 1], [len(each[0][0]), len(each[1][0])])[order]
    assert set(ours.phrase_index) == {0, 1}
    # each detection says which phrase found it: its box is that phrase's reference box
    boxes = np.concatenate([each[0][1], each[1][1]])[order]
    np.testing.assert_allclose(ours.boxes[ours.phrase_index == phrase], boxes[ours.phrase_index == phrase], atol=0.5)


def test_max_detections_keeps_the_best(sam3_pipeline, encoding, reference, scene):
    ours = sam3_pipeline.detect(encoding, ["dog"], score_threshold=SCORE_FLOOR, max_detections=3)
    scores, boxes, masks = reference_detections(reference, scene, "dog", limit=3)
    assert len(scores) == 3
    assert_same_detections(ours, scores, boxes, masks)


def test_a_high_threshold_finds_nothing(sam3_pipeline, encoding):
    ours = sam3_pipeline.detect(encoding, ["dog"], score_threshold=0.99)
    assert ours.masks.shape == (0, *encoding.image_size)


def test_the_text_encoder_runs_once_per_phrase(sam3_pipeline, encoding):
    phrase = "a phrase used twice"
    sam3_pipeline.detect(encoding, [phrase])
    misses, hits = sam3_pipeline.text_features.misses, sam3_pipeline.text_features.hits
    sam3_pipeline.detect(encoding, [phrase])
    assert (sam3_pipeline.text_features.misses, sam3_pipeline.text_features.hits) == (misses, hits + 1)


@pytest.mark.parametrize("prompt", [
    {"points": [[200.0, 150.0]], "labels": [1]},
    {"points": [[200.0, 150.0], [450.0, 310.0]], "labels": [1, 0]},
    {"box": [100.0, 90.0, 220.0, 250.0]},
])
@pytest.mark.parametrize("multimask", [True, False])
def test_clicks_equal_the_tracker_reference(sam3_pipeline, encoding, reference, scene, prompt, multimask):
    processor = reference["tracker_processor"]
    extra = {}
    if "points" in prompt:
        extra = {"input_points": [[prompt["points"]]], "input_labels": [[prompt["labels"]]]}
    else:
        extra = {"input_boxes": [[prompt["box"]]]}
    inputs = processor(images=Image.fromarray(scene), return_tensors="pt", **extra)
    with torch.no_grad():
        outputs = reference["tracker"](**inputs, multimask_output=multimask)
    masks = processor.post_process_masks(outputs.pred_masks, inputs["original_sizes"])[0][0].numpy()
    ours = sam3_pipeline.click(encoding, Sam2Prompt(
        points=np.array(prompt["points"], np.float32) if "points" in prompt else None,
        labels=np.array(prompt["labels"]) if "labels" in prompt else None,
        box=np.array(prompt["box"], np.float32) if "box" in prompt else None,
    ), multimask)
    assert ours.masks.shape == masks.shape == ((3 if multimask else 1), *scene.shape[:2])
    assert np.mean(ours.masks != masks) <= 1e-5
    np.testing.assert_allclose(ours.scores, outputs.iou_scores[0, 0].numpy(), rtol=0, atol=1e-5)


def test_a_mask_prompt_changes_the_click(sam3_pipeline, encoding, scene):
    click = Sam2Prompt(points=np.array([[200.0, 150.0]], np.float32), labels=np.array([1]))
    first = sam3_pipeline.click(encoding, click, multimask=False)
    logits = sam3_pipeline.mask_logits(~first.masks[0])
    assert logits.shape == (1, sam3_pipeline.mask_input_size, sam3_pipeline.mask_input_size)
    again = sam3_pipeline.click(encoding, Sam2Prompt(click.points, click.labels, mask_logits=logits), multimask=False)
    assert not np.array_equal(again.masks, first.masks)

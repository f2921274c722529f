"""Our GroundingDINO detection step against transformers' own post-processing, on the same random weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from segserve.contract.errors import InvalidRequest
from segserve.contract.requests import DetectionParams
from segserve.models.grounding_dino import normalize_prompt


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("black jeans", "black jeans."),
        ("Black Jeans. A   Dog", "black jeans. a dog."),
        ("cat.dog.", "cat. dog."),
        ("  shirt .. . hat ", "shirt. hat."),
    ],
)
def test_prompt_normalisation(raw, expected):
    assert normalize_prompt(raw) == expected


@pytest.mark.parametrize("raw", ["", "   ", " . .. "])
def test_a_prompt_without_words_is_a_client_error(raw):
    with pytest.raises(InvalidRequest) as error:
        normalize_prompt(raw)
    assert error.value.field == "text_prompt"


def reference_detections(detector, image, text, box_threshold, text_threshold):
    """transformers' own pipeline: processor → model → post_process_grounded_object_detection."""
    inputs = detector.processor(images=image, text=normalize_prompt(text), return_tensors="pt")
    with torch.inference_mode():
        outputs = detector.model(**inputs)
    (result,) = detector.processor.post_process_grounded_object_detection(
        outputs, inputs.input_ids, threshold=box_threshold, text_threshold=text_threshold,
        target_sizes=[image.shape[:2]],
    )
    h, w = image.shape[:2]
    boxes = result["boxes"].numpy()
    boxes = np.clip(boxes, 0, [w, h, w, h])  # ours are clipped to the image
    labels = [label.replace("[SEP]", "").replace("[CLS]", "").strip(" .") for label in result["text_labels"]]
    return boxes, result["scores"].numpy(), labels


def by_position(boxes, scores, labels):
    order = np.lexsort(boxes.T[::-1])
    return boxes[order], scores[order], [labels[i] for i in order]


@pytest.mark.parametrize("shape", [(480, 640), (700, 300)])
def test_boxes_match_transformers_post_processing(detector, shape):
    from tests.conftest import make_scene

    image = make_scene(*shape)
    ours = detector.detect(image, "Black jeans. a dog", DetectionParams(0.3, 0.25, max_detections=900))
    ref_boxes, ref_scores, ref_labels = reference_detections(detector, image, "Black jeans. a dog", 0.3, 0.25)
    assert len(ours) == len(ref_boxes) > 0
    boxes, scores, labels = by_position(
        np.array([d.box for d in ours]), np.array([d.score for d in ours]), [d.label for d in ours]
    )
    ref_boxes, ref_scores, ref_labels = by_position(ref_boxes, ref_scores, ref_labels)
    np.testing.assert_allclose(boxes, ref_boxes, atol=1e-3)
    np.testing.assert_allclose(scores, ref_scores, atol=1e-6)
    assert [" ".join(label.split()) for label in labels] == [" ".join(label.split()) for label in ref_labels]
    h, w = shape
    assert (boxes[:, [0, 2]] <= w).all() and (boxes[:, [1, 3]] <= h).all() and (boxes >= 0).all()


def test_detections_are_capped_best_first(detector, scene):
    everything = detector.detect(scene, "a dog", DetectionParams(max_detections=900))
    top = detector.detect(scene, "a dog", DetectionParams(max_detections=5))
    assert len(everything) > 5 and len(top) == 5
    scores = [d.score for d in top]
    assert scores == sorted(scores, reverse=True)
    assert min(scores) >= max(d.score for d in everything[5:])


def test_nothing_detected_is_an_empty_list(detector, scene):
    assert detector.detect(scene, "a dog", DetectionParams(box_threshold=1.0)) == []


@pytest.mark.parametrize("height, width", [(1, 1), (3, 5), (1, 7), (3, 3)])
def test_images_one_or_three_pixels_high_are_read_as_height_width_channels(detector, height, width):
    """Found by the live fuzz test: the processor took a 1- or 3-row image for channels-first and failed (500)."""
    image = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
    detections = detector.detect(image, "a dog", DetectionParams(max_detections=3))
    assert len(detections) == 3
    assert all(0 <= d.box[0] <= d.box[2] <= width and 0 <= d.box[1] <= d.box[3] <= height for d in detections)


def test_a_too_long_prompt_is_a_client_error(detector, scene):
    with pytest.raises(InvalidRequest, match="longer than 256 tokens") as error:
        detector.detect(scene, "dog " * 300)
    assert error.value.field == "text_prompt"


@pytest.mark.parametrize("bad", [{"box_threshold": 1.5}, {"text_threshold": -0.1}, {"max_detections": 0}])
def test_detection_params_refuse_values_out_of_range(bad):
    with pytest.raises(ValueError):
        DetectionParams(**bad)

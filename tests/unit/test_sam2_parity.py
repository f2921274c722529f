"""Our SAM2 pipeline against sam2's own SAM2ImagePredictor, on the same random weights."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from segserve.contract.errors import InvalidRequest
from segserve.models.sam2_pipeline import Sam2Prompt


@pytest.fixture(scope="module")
def reference(sam2_pipeline, scene):
    from sam2.sam2_image_predictor import SAM2ImagePredictor

    predictor = SAM2ImagePredictor(sam2_pipeline.model)
    predictor.set_image(scene)
    return predictor


@pytest.fixture(scope="module")
def embedding(sam2_pipeline, scene):
    return sam2_pipeline.encode(scene)


# Masks may differ from the predictor's in 1 pixel in 100,000: float noise at the threshold. We upsample the
# logits with OpenCV, the predictor with torch (tests/unit/test_mask_upscaling.py: flips only at |logit| < 1e-4),
# and other chunks of boxes than the reference's one batch change the decoder's matmul shapes.
PIXEL_TOLERANCE = 1e-5


def assert_same(ours, masks, scores, logits):
    """The same masks up to PIXEL_TOLERANCE, the same scores and low-res logits."""
    assert ours.masks.dtype == bool
    assert ours.masks.shape == masks.shape
    assert np.mean(ours.masks != (masks > 0)) <= PIXEL_TOLERANCE
    np.testing.assert_allclose(ours.scores, scores, rtol=0, atol=1e-5)
    np.testing.assert_allclose(ours.low_res_logits, logits, rtol=0, atol=1e-4)


def test_embedding_keeps_the_original_size(embedding, scene):
    assert embedding.image_size == (480, 640)
    assert embedding.image_embed.shape[-2:] == (64, 64)
    assert [f.shape[-1] for f in embedding.high_res_feats] == [256, 128]


def test_one_positive_point_multimask(sam2_pipeline, embedding, reference):
    points, labels = np.array([[200.0, 150.0]]), np.array([1])
    ours = sam2_pipeline.predict(embedding, Sam2Prompt(points, labels), multimask=True)
    assert ours.masks.shape == (3, 480, 640)
    assert_same(ours, *reference.predict(point_coords=points, point_labels=labels, multimask_output=True))


def test_positive_and_negative_points(sam2_pipeline, embedding, reference):
    points, labels = np.array([[200.0, 150.0], [450.0, 310.0], [600.0, 40.0]]), np.array([1, 0, 0])
    ours = sam2_pipeline.predict(embedding, Sam2Prompt(points, labels), multimask=False)
    assert ours.masks.shape == (1, 480, 640)
    assert_same(ours, *reference.predict(point_coords=points, point_labels=labels, multimask_output=False))


def test_box(sam2_pipeline, embedding, reference):
    box = np.array([100.0, 90.0, 220.0, 250.0])
    ours = sam2_pipeline.predict(embedding, Sam2Prompt(box=box), multimask=False)
    assert_same(ours, *reference.predict(box=box, multimask_output=False))


def test_box_with_points(sam2_pipeline, embedding, reference):
    box, points, labels = np.array([380.0, 230.0, 560.0, 420.0]), np.array([[450.0, 310.0]]), np.array([1])
    ours = sam2_pipeline.predict(embedding, Sam2Prompt(points, labels, box), multimask=True)
    assert_same(ours, *reference.predict(point_coords=points, point_labels=labels, box=box, multimask_output=True))


def test_refining_with_previous_logits(sam2_pipeline, embedding, reference):
    points, labels = np.array([[200.0, 150.0]]), np.array([1])
    first = sam2_pipeline.predict(embedding, Sam2Prompt(points, labels), multimask=True)
    best = first.low_res_logits[np.argmax(first.scores)][None]
    more_points, more_labels = np.array([[200.0, 150.0], [300.0, 200.0]]), np.array([1, 0])
    ours = sam2_pipeline.predict(embedding, Sam2Prompt(more_points, more_labels, mask_logits=best), multimask=False)
    expected = reference.predict(
        point_coords=more_points, point_labels=more_labels, mask_input=best, multimask_output=False
    )
    assert_same(ours, *expected)


@pytest.mark.parametrize("count, box_batch", [(1, 1), (3, 1), (3, 16), (21, 16)])  # 21 spans two chunks of 16
def test_several_boxes_on_one_encoding(sam2_pipeline, embedding, reference, count, box_batch):
    from segserve.models.sam2_pipeline import Sam2Pipeline

    pipeline = Sam2Pipeline(sam2_pipeline.model, dataclasses.replace(sam2_pipeline.runtime, box_batch=box_batch))
    rng = np.random.default_rng(count)
    x0, y0 = rng.uniform(0, 400, count), rng.uniform(0, 300, count)
    boxes = np.stack([x0, y0, x0 + rng.uniform(20, 240, count), y0 + rng.uniform(20, 180, count)], axis=1)
    ours = pipeline.predict_boxes(embedding, boxes.astype(np.float32))
    masks, scores, logits = reference.predict(box=boxes, multimask_output=False)
    if count == 1:  # the predictor drops the batch axis for a single box
        masks, scores, logits = masks[None], scores[None], logits[None]
    assert ours.masks.shape == (count, 480, 640)
    assert_same(ours, masks[:, 0], scores[:, 0], logits[:, 0])


def test_no_boxes_is_an_empty_prediction(sam2_pipeline, embedding):
    empty = sam2_pipeline.predict_boxes(embedding, np.zeros((0, 4), np.float32))
    assert empty.masks.shape == (0, 480, 640) and empty.scores.shape == (0,)


def test_mask_boxes_are_tight(sam2_pipeline, embedding):
    prediction = sam2_pipeline.predict(embedding, Sam2Prompt(np.array([[200.0, 150.0]]), np.array([1])))
    for mask, box in zip(prediction.masks, prediction.boxes):
        if box is None:
            assert not mask.any()
            continue
        x0, y0, x1, y1 = box
        ys, xs = np.nonzero(mask)
        assert (x0, y0, x1, y1) == (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({}, "points"),
        ({"points": np.array([[1.0, 2.0]])}, "labels"),
        ({"points": np.array([1.0, 2.0]), "labels": np.array([1])}, "points"),
        ({"points": np.array([[1.0, 2.0]]), "labels": np.array([1, 0])}, "labels"),
        ({"box": np.array([1.0, 2.0, 3.0])}, "box"),
    ],
)
def test_malformed_prompts_are_client_errors(kwargs, field):
    with pytest.raises(InvalidRequest) as error:
        Sam2Prompt(**kwargs)
    assert error.value.field == field

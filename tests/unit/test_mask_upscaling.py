"""The fast CPU mask upsampling against the torch interpolate that Meta's SAM2ImagePredictor uses."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from segserve.media.masks import encode_rle
from segserve.models.mask_upscaling import upscale_masks, upscale_on_device

# The two bilinear resizes differ by float rounding only (seen: ≤ 3.2e-5 on logits up to ~60).
NEAR_THRESHOLD = 1e-4


def smooth_logits(batch: int, channels: int, seed: int) -> torch.Tensor:
    """SAM2-like low-res logits: smooth fields of magnitude ~10-60 with many threshold crossings."""
    rng = np.random.default_rng(seed)
    noise = rng.normal(0, 10, (256, 256, batch * channels)).astype(np.float32)
    fields = cv2.GaussianBlur(noise, (0, 0), 6).reshape(256, 256, -1) * 40
    return torch.from_numpy(np.ascontiguousarray(fields.transpose(2, 0, 1))).reshape(batch, channels, 256, 256)


def reference(low_res: torch.Tensor, size: tuple[int, int]) -> np.ndarray:
    """Meta's post-processing: torch bilinear to the image size, as float logits."""
    return F.interpolate(low_res, size, mode="bilinear", align_corners=False).flatten(0, 1).numpy()


@pytest.mark.parametrize("size", [(480, 640), (768, 1024), (1001, 333), (80, 100), (3000, 4000)])
def test_masks_match_torch_except_at_the_threshold(size):
    low_res = smooth_logits(1, 3 if size != (3000, 4000) else 1, seed=sum(size))
    logits = reference(low_res, size)
    ours = upscale_masks(low_res, size, 0.0)
    assert ours.shape == logits.shape and ours.dtype == bool
    flipped = ours != (logits > 0.0)
    assert np.abs(logits[flipped]).max(initial=0.0) < NEAR_THRESHOLD
    assert flipped.mean() < 1e-5
    assert 0.2 < ours.mean() < 0.8  # the fields really cross the threshold


def test_the_threshold_is_applied():
    low_res = smooth_logits(1, 1, seed=1)
    logits = reference(low_res, (300, 200))
    ours = upscale_masks(low_res, (300, 200), 5.0)
    flipped = ours != (logits > 5.0)
    assert np.abs(logits[flipped] - 5.0).max(initial=0.0) < NEAR_THRESHOLD
    assert ours.sum() < upscale_masks(low_res, (300, 200), 0.0).sum()


def test_batch_and_channels_flatten_in_order():
    low_res = smooth_logits(2, 3, seed=2)
    ours = upscale_masks(low_res, (120, 160), 0.0)
    assert ours.shape == (6, 120, 160)
    for index in range(6):
        single = upscale_masks(low_res.flatten(0, 1)[index][None, None], (120, 160), 0.0)
        np.testing.assert_array_equal(ours[index], single[0])


def test_cpu_masks_are_column_major_and_encode_like_row_major_ones():
    (mask, *_) = upscale_masks(smooth_logits(1, 3, seed=3), (240, 320), 0.0)
    assert mask.flags.f_contiguous and not mask.flags.c_contiguous
    assert encode_rle(mask) == encode_rle(np.ascontiguousarray(mask))


def test_the_device_path_is_meta_exactly_and_reaches_the_host_column_major():
    """upscale_on_device is what runs on CUDA; on a CPU tensor it runs the same torch ops (no GPU here)."""
    low_res = smooth_logits(2, 3, seed=4)
    masks = upscale_on_device(low_res, (240, 320), 0.0)
    np.testing.assert_array_equal(masks, reference(low_res, (240, 320)) > 0.0)
    assert masks.shape == (6, 240, 320) and all(mask.flags.f_contiguous for mask in masks)
    assert encode_rle(masks[1]) == encode_rle(np.ascontiguousarray(masks[1]))

"""SAM2's low-res mask logits → bool masks at the image's size, fast on the CPU.

Meta's `SAM2ImagePredictor` upsamples the 256×256 logits to the image size with torch's bilinear
`interpolate` (align_corners=False) and thresholds the floats. On the CPU that is the slow part of a click
on a large photo: ~0.3 s per 12-megapixel mask on one thread, three masks per click. OpenCV's bilinear
resize samples the same pixel centres (half-pixel offsets, edge pixels repeated) about 10× faster; the two
differ only by float rounding (≤ ~3e-5 on logits of magnitude ~50), so a pixel can flip only where its logit
is that close to the threshold (tests/unit/test_mask_upscaling.py bounds it).

Each mask is resized transposed, so it comes out column-major, the order COCO RLE runs in (no copy to
Fortran order when it is encoded), and is thresholded into the bool output through one reused float buffer.
On CUDA, torch's own interpolate and the threshold run on the device, exactly as in Meta's predictor, and the
bool masks are transposed there too, so that they reach the host column-major as well.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
import torch.nn.functional as F


def upscale_masks(low_res: torch.Tensor, size: tuple[int, int], threshold: float) -> np.ndarray:
    """(B, C, h, w) logits → (B*C, H, W) bool masks `logit > threshold` at `size` = (H, W).

    From a CPU tensor each mask is a column-major (Fortran-order) array.
    """
    height, width = size
    if low_res.device.type != "cpu":
        return upscale_on_device(low_res, size, threshold)
    logits = low_res.float().flatten(0, 1).numpy()
    transposed = np.empty((len(logits), width, height), dtype=bool)
    buffer = np.empty((width, height), dtype=np.float32)
    for logit, mask in zip(logits, transposed):
        cv2.resize(np.ascontiguousarray(logit.T), (height, width), dst=buffer, interpolation=cv2.INTER_LINEAR)
        np.greater(buffer, threshold, out=mask)
    return transposed.transpose(0, 2, 1)


def upscale_on_device(low_res: torch.Tensor, size: tuple[int, int], threshold: float) -> np.ndarray:
    """The GPU path (any device): interpolate, threshold and transpose where the logits are; one copy of
    bools to the host, which arrive as column-major (H, W) masks, so RLE needs no Fortran copy of its own."""
    upscaled = F.interpolate(low_res.float(), size, mode="bilinear", align_corners=False)
    transposed = (upscaled > threshold).flatten(0, 1).transpose(1, 2).contiguous()
    return transposed.cpu().numpy().transpose(0, 2, 1)

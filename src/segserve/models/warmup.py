"""Warm-up at worker start: one pass through each model before the worker reports itself loaded.

On CUDA the first call of a model pays for the CUDA context, kernel selection, cuDNN autotuning and, with
`compile: true`, torch.compile of the SAM2 image encoder (minutes with max-autotune). The full warm-up runs
them at the shapes requests use: one encode (the encoder always sees 1024×1024, so a small dummy image
does), a one-point decode with three masks, a box decode, and a detector pass, so that the first user
request is not the slow one.

On the CPU the first call was measured no slower than the next ones (docs/benchmarks.md), while a full
warm-up would add one encode (~3 s) and one detector pass (~12 s) to every start. There the warm-up is
light: the decoder on a blank embedding and the detector on a 256×256 input. It still runs every code path
once, so a worker whose model cannot run fails at its start (and /ping stays 503) instead of on a user's
first request.

Nothing goes through the services: no cache entry, no metric, no answer.
"""

from __future__ import annotations

import logging
import time

import numpy as np
import torch

from segserve.models.grounding_dino import GroundingDinoDetector
from segserve.models.sam2_pipeline import ImageEmbedding, Sam2Pipeline, Sam2Prompt
from segserve.models.sam3_pipeline import Sam3Pipeline

log = logging.getLogger(__name__)

_DUMMY_SIZE = 64  # the dummy picture's side: the encoder resizes any image to its own 1024×1024
# GroundingDINO's two-stage head picks its 900 queries among the encoder's tokens: a 256×256 input gives
# 1,360 of them over its four feature levels, enough for the default config.
_DETECTOR_SIDE = 256


def full_warm_up(runtime) -> bool:
    """Whether a device wants the full warm-up (shapes as requests have them) rather than the light one."""
    return runtime.device.type == "cuda"


def warm_up_sam2(pipeline: Sam2Pipeline) -> float:
    """One decode of a point (3 masks) and of a box, on a real encoding (CUDA) or a blank one; seconds taken."""
    start = time.perf_counter()
    size = _DUMMY_SIZE
    if full_warm_up(pipeline.runtime):
        embedding = pipeline.encode(np.zeros((size, size, 3), np.uint8))
    else:
        embedding = blank_embedding(pipeline, (size, size))
    centre = np.array([[size / 2, size / 2]], np.float32)
    pipeline.predict(embedding, Sam2Prompt(points=centre, labels=np.array([1])), multimask=True)
    pipeline.predict_boxes(embedding, np.array([[0, 0, size / 2, size / 2]], np.float32))
    seconds = time.perf_counter() - start
    log.info("warm-up: SAM2 (%s) in %.2f s", "encode + decode" if full_warm_up(pipeline.runtime) else "decode",
             seconds)
    return seconds


def blank_embedding(pipeline: Sam2Pipeline, image_size: tuple[int, int]) -> ImageEmbedding:
    """An all-zero embedding of the shapes the encoder gives: what the decoder needs, without the encoder."""
    model, device = pipeline.model, pipeline.runtime.device
    side = model.sam_image_embedding_size
    decoder = model.sam_mask_decoder
    channels = (decoder.conv_s0.out_channels, decoder.conv_s1.out_channels)
    return ImageEmbedding(
        torch.zeros(1, model.sam_prompt_encoder.embed_dim, side, side, device=device),
        tuple(torch.zeros(1, c, side * f, side * f, device=device) for c, f in zip(channels, (4, 2))),
        image_size,
    )


def warm_up_sam3(pipeline: Sam3Pipeline) -> float:
    """A phrase and a click on a real encoding (CUDA) or on the necks of blank backbone features; seconds taken.

    The warm-up phrase's text features stay in the pipeline's phrase cache (a few KB): harmless."""
    start = time.perf_counter()
    size = (_DUMMY_SIZE, _DUMMY_SIZE)
    if full_warm_up(pipeline.runtime):
        encoding = pipeline.encode(np.zeros((*size, 3), np.uint8))
    else:
        side, device = pipeline.grid_side, pipeline.runtime.device
        with pipeline.runtime.model_call():
            encoding = pipeline.from_backbone(torch.zeros(1, pipeline.backbone_width, side, side, device=device), size)
    pipeline.detect(encoding, ["an object"], max_detections=5)
    centre = np.array([[size[1] / 2, size[0] / 2]], np.float32)
    pipeline.click(encoding, Sam2Prompt(points=centre, labels=np.array([1])), multimask=True)
    seconds = time.perf_counter() - start
    log.info("warm-up: SAM 3 (%s) in %.2f s", "encode + detect + click" if full_warm_up(pipeline.runtime)
             else "necks + detect + click", seconds)
    return seconds


def warm_up_detector(detector: GroundingDinoDetector) -> float:
    """One detector pass: a full detect on a dummy image (CUDA) or the model on a small input; seconds taken."""
    start = time.perf_counter()
    if full_warm_up(detector.runtime):
        detector.detect(np.zeros((_DUMMY_SIZE, _DUMMY_SIZE, 3), np.uint8), "an object")
    else:
        side, device = _DETECTOR_SIDE, detector.runtime.device
        text = detector.processor.tokenizer("an object.", return_tensors="pt").to(device)
        pixels = torch.zeros(1, 3, side, side, device=device)
        with detector.runtime.model_call():
            detector.model(pixel_values=pixels, pixel_mask=torch.ones(1, side, side, dtype=torch.long, device=device),
                           **text)
    seconds = time.perf_counter() - start
    log.info("warm-up: GroundingDINO (%s) in %.2f s", "detect" if full_warm_up(detector.runtime) else "light pass",
             seconds)
    return seconds

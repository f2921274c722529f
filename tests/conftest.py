"""Shared fixtures: the random `tiny` weights bundle, loaded through the production loaders.

`make test` prepares weights/tiny once and points SEGSERVE_WEIGHTS_DIR at it; a bare `pytest` builds
the bundle in a temporary folder instead (about 10 s).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from segserve.weights.bundle import WeightsBundle


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory) -> WeightsBundle:
    weights_dir = os.environ.get("SEGSERVE_WEIGHTS_DIR")
    if weights_dir and (Path(weights_dir) / "tiny" / "manifest.json").is_file():
        return WeightsBundle.load(Path(weights_dir) / "tiny")
    from segserve.weights.random_models import write_random_bundle

    return write_random_bundle(tmp_path_factory.mktemp("weights") / "tiny", "tiny", seed=0)


@pytest.fixture(scope="session")
def sam2_pipeline(tiny_bundle):
    from segserve.models.runtime import Runtime
    from segserve.models.sam2_pipeline import Sam2Pipeline

    return Sam2Pipeline.from_checkpoint(tiny_bundle.sam2_checkpoint, tiny_bundle.sam2_config, Runtime.select("cpu"))


@pytest.fixture(scope="session")
def sam3_pipeline(tiny_bundle):
    from segserve.models.runtime import Runtime
    from segserve.models.sam3_pipeline import Sam3Pipeline

    return Sam3Pipeline.from_folder(tiny_bundle.sam3_dir, Runtime.select("cpu"))


@pytest.fixture(scope="session")
def detector(tiny_bundle):
    from segserve.models.grounding_dino import GroundingDinoDetector
    from segserve.models.runtime import Runtime

    return GroundingDinoDetector.from_pretrained(tiny_bundle.grounding_dino_dir, Runtime.select("cpu"))


def make_scene(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A non-square RGB test picture with distinct regions (shapes on a gradient, a little noise)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    image = np.stack([xx * 255 // width, yy * 255 // height, np.full_like(xx, 90)], axis=-1).astype(np.float32)
    image[height // 5 : height // 2, width // 6 : width // 3] = (230, 40, 40)
    disc = (yy - height * 0.65) ** 2 + (xx - width * 0.7) ** 2 < (min(height, width) * 0.15) ** 2
    image[disc] = (30, 30, 220)
    image += rng.normal(0, 6, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


@pytest.fixture(scope="session")
def scene() -> np.ndarray:
    return make_scene(480, 640)

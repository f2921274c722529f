"""Warm-up at worker start: what runs on the CPU (light) and on CUDA (full), on the tiny random models."""

from __future__ import annotations

import numpy as np

from segserve.models import warmup
from segserve.models.runtime import Runtime
from segserve.models.sam2_pipeline import Sam2Pipeline


class Calls:
    """Records the calls to the wrapped methods of an object, then runs them."""

    def __init__(self, monkeypatch, target, *names):
        self.seen: list[tuple[str, tuple]] = []
        for name in names:
            original = getattr(target, name)
            monkeypatch.setattr(target, name, self._wrap(name, original))

    def _wrap(self, name, original):
        def recorded(*args, **kwargs):
            self.seen.append((name, args))
            return original(*args, **kwargs)
        return recorded

    @property
    def names(self) -> list[str]:
        return [name for name, _ in self.seen]


def test_blank_embedding_has_the_encoders_shapes(sam2_pipeline):
    real = sam2_pipeline.encode(np.zeros((48, 64, 3), np.uint8))
    blank = warmup.blank_embedding(sam2_pipeline, (48, 64))
    assert blank.image_size == real.image_size == (48, 64)
    assert blank.image_embed.shape == real.image_embed.shape
    assert [f.shape for f in blank.high_res_feats] == [f.shape for f in real.high_res_feats]
    assert blank.nbytes == real.nbytes


def test_cpu_warm_up_decodes_without_the_encoder(sam2_pipeline, monkeypatch):
    calls = Calls(monkeypatch, sam2_pipeline, "encode", "predict", "predict_boxes")
    warmup.warm_up_sam2(sam2_pipeline)
    assert calls.names == ["predict", "predict_boxes"]
    _, (embedding, prompt, *_) = calls.seen[0]
    assert not embedding.image_embed.any() and prompt.points.shape == (1, 2)


def test_full_warm_up_encodes_then_decodes_on_that_encoding(sam2_pipeline, monkeypatch):
    monkeypatch.setattr(warmup, "full_warm_up", lambda runtime: True)
    calls = Calls(monkeypatch, sam2_pipeline, "encode", "predict", "predict_boxes")
    warmup.warm_up_sam2(sam2_pipeline)
    assert calls.names == ["encode", "predict", "predict_boxes"]
    assert calls.seen[1][1][0].image_embed.any()  # the dummy image's real encoding, not the blank one


def test_cpu_detector_warm_up_runs_the_model_on_a_small_input(detector, monkeypatch):
    calls = Calls(monkeypatch, detector, "detect")
    shapes = []
    handle = detector.model.register_forward_pre_hook(
        lambda module, args, kwargs: shapes.append(tuple(kwargs["pixel_values"].shape)), with_kwargs=True
    )
    try:
        warmup.warm_up_detector(detector)
    finally:
        handle.remove()
    assert calls.names == [] and shapes == [(1, 3, 256, 256)]


def test_full_detector_warm_up_is_a_detect(detector, monkeypatch):
    monkeypatch.setattr(warmup, "full_warm_up", lambda runtime: True)
    calls = Calls(monkeypatch, detector, "detect")
    warmup.warm_up_detector(detector)
    assert calls.names == ["detect"]


def test_warm_up_logs_what_it_did(sam2_pipeline, caplog):
    with caplog.at_level("INFO", logger="segserve.models.warmup"):
        warmup.warm_up_sam2(sam2_pipeline)
    assert any(r.getMessage().startswith("warm-up: SAM2 (decode) in ") for r in caplog.records)


def test_compile_is_not_applied_on_the_cpu(tiny_bundle, caplog):
    with caplog.at_level("INFO", logger="segserve.models.sam2_pipeline"):
        pipeline = Sam2Pipeline.from_checkpoint(tiny_bundle.sam2_checkpoint, tiny_bundle.sam2_config,
                                                Runtime.select("cpu"), compile_encoder=True)
    assert "forward" not in vars(pipeline.model.image_encoder)  # the class's own forward: not compiled
    assert any("CUDA only" in r.getMessage() for r in caplog.records)


def test_warm_up_leaves_the_services_cache_untouched(sam2_pipeline):
    from segserve.inference.services import Sam2Service
    from segserve.media.image_loading import ImageLoader
    from segserve.models.embedding_cache import LruEmbeddingCache

    cache = LruEmbeddingCache(64 * 2**20)
    service = Sam2Service(sam2_pipeline, ImageLoader(), cache)
    warmup.warm_up_sam2(service.pipeline)
    stats = cache.stats()
    assert (stats.entries, stats.hits, stats.misses, stats.bytes) == (0, 0, 0, 0)

"""Device settings are scoped to the model call and leave nothing behind."""

from __future__ import annotations

import torch

from segserve.models.runtime import Runtime, StageTimer, _tf32_enabled


def test_the_cpu_runs_in_fp32_without_autocast():
    runtime = Runtime.select("cpu")
    assert runtime.device.type == "cpu" and runtime.autocast_dtype is None and not runtime.allow_tf32
    with runtime.model_call():
        assert torch.is_inference_mode_enabled()
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.float32
    assert not torch.is_inference_mode_enabled()


def test_autocast_is_scoped_to_the_model_call():
    runtime = Runtime(torch.device("cpu"), autocast_dtype=torch.bfloat16)
    with runtime.model_call():
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.bfloat16
    assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.float32
    assert not torch.is_autocast_enabled("cpu")


def test_tf32_flags_are_restored_even_after_an_error():
    before = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    try:
        with _tf32_enabled():
            assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    assert (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32) == before


def test_stage_timer_adds_up_repeated_stages():
    timer = StageTimer(Runtime.select("cpu"))
    for _ in range(2):
        with timer.stage("decode"):
            pass
    with timer.stage("encode"):
        sum(range(10000))
    assert set(timer.stages) == {"decode", "encode"} and all(v >= 0 for v in timer.stages.values())


def test_bf16_and_tf32_only_where_the_gpu_computes_them_natively(monkeypatch):
    """A T4 (ml.g4dn, capability 7.5) emulates bf16 slower than fp32; an A10G (ml.g5, 8.6) has it natively."""
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: True)  # what torch says on both
    for capability, expected in (((7, 5), None), ((8, 6), torch.bfloat16)):
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None, c=capability: c)
        runtime = Runtime.select("cuda:0")
        assert runtime.autocast_dtype is expected
        assert runtime.allow_tf32 is (expected is not None)
        assert runtime.box_batch == 16

"""Where and how models run: the device, and the numeric settings scoped to each model call.

On CUDA the model call runs under bf16 autocast (where the GPU supports bf16) with TF32 matmuls; on the
CPU it runs in plain fp32. Both are applied only inside `Runtime.model_call()` and restored after it, so
nothing leaks into other code in the process (no global autocast, no global TF32 flag left behind).
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from typing import Iterator

import torch


@dataclass(frozen=True)
class Runtime:
    device: torch.device
    autocast_dtype: torch.dtype | None = None  # None: run in the weights' own dtype (fp32)
    allow_tf32: bool = False
    # Boxes decoded together by SAM2. Batching pays on a GPU; on the CPU each box costs MORE in a batch
    # (measured: 66 ms/box alone, 124-200 ms/box in batches of 16-50; benchmarks/), so one at a time.
    box_batch: int = 1

    @classmethod
    def select(cls, device: str | None = None) -> "Runtime":
        """CUDA when present (or when asked for), else the CPU; the GPU settings follow from the hardware."""
        chosen = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        if chosen.type != "cuda":
            return cls(chosen)
        # Ampere and newer compute bf16 and TF32 natively. torch's is_bf16_supported() says True on older GPUs
        # too (T4, ml.g4dn) through emulation, which is slower than fp32: those run in fp32.
        native = torch.cuda.get_device_capability(chosen)[0] >= 8
        return cls(chosen, torch.bfloat16 if native else None, native, box_batch=16)

    @contextlib.contextmanager
    def model_call(self) -> Iterator[None]:
        """inference_mode, plus autocast and TF32 on CUDA; every setting is restored on exit."""
        with contextlib.ExitStack() as stack:
            stack.enter_context(torch.inference_mode())
            if self.autocast_dtype is not None:
                stack.enter_context(torch.autocast(self.device.type, dtype=self.autocast_dtype))
            if self.allow_tf32:
                stack.enter_context(_tf32_enabled())
            yield

    def synchronize(self) -> None:
        """Wait for queued GPU work so that stage timings measure the work, not the launch."""
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)


@contextlib.contextmanager
def _tf32_enabled() -> Iterator[None]:
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


@dataclass
class StageTimer:
    """Wall-clock milliseconds per named stage, e.g. {"image_encoder": 2100.3, "mask_decoder": 41.0}."""

    runtime: Runtime
    stages: dict[str, float] = field(default_factory=dict)

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.runtime.synchronize()
            self.stages[name] = self.stages.get(name, 0.0) + (time.perf_counter() - start) * 1000.0

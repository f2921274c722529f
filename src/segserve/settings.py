"""The server's settings, all validated like a request (unknown keys refused, bounds checked), so that a typo
in a deployment fails the worker's start with a clear message instead of being ignored:

- `ServingEnvironment`: what every worker shares, from SEGSERVE_* environment variables (set by
  serving/entrypoint.sh, or by a deployment): addresses, the request and answer limits, the image limits.
  Each is defined here once and used by the router and every model alike.
- `ModelSettings` / `RouterSettings`: one model's own, from the `handler:` section of its model-config.yaml.

README "Configuration" lists them all.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from segserve.contract.errors import WeightsError
from segserve.contract.requests import DetectionParams
from segserve.media.image_fetch import FetchPolicy, is_public_address, is_unicast_outside_metadata, read_s3_object
from segserve.media.image_loading import ImageLoader
from segserve.media.images import DEFAULT_MAX_PIXELS
from segserve.contract.wire import RESPONSE_FRAME_BYTES, TORCHSERVE_MAX_RESPONSE_BYTES
from segserve.contract.requests import MAX_DETECTIONS_LIMIT
from segserve.prompts.llm_endpoint import LlmEndpoint
from segserve.prompts.refinement import NullRefiner, PromptCheck, PromptRefiner

log = logging.getLogger(__name__)

_DETECTION = DetectionParams()


class _Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    @classmethod
    def from_config(cls, section: dict | None):
        try:
            return cls.model_validate(section or {})
        except ValidationError as exc:
            raise WeightsError(f"invalid handler section in model-config.yaml: {exc}") from None


class LlmSettings(_Settings):
    """The `llm:` block: an OpenAI-compatible chat model (OPENAI_BASE_URL, OPENAI_API_KEY in the environment)."""

    model: str = Field("gpt-4o-mini", min_length=1)
    timeout_s: float = Field(3.0, gt=0, le=20)  # per attempt; a slow LLM must not eat the 60 s budget
    max_retries: int = Field(1, ge=0, le=3)  # the openai client's: timeouts, connection errors, 408/409/429/5xx
    temperature: float | None = Field(0.0, ge=0, le=2)  # null: not sent (models that take only their default)
    cache_entries: int = Field(1024, ge=0)  # refinements remembered per worker (LRU); 0: none
    # after a timeout, no connection or an error status the LLM is not asked for this long, then one request
    # probes it (prompts/cooldown.py); 0: it is asked every time
    cooldown_s: float = Field(30.0, ge=0, le=3600)


class ServingEnvironment(_Settings):
    """SEGSERVE_<FIELD> environment variables (e.g. SEGSERVE_MAX_PIXELS), shared by the router and the models."""

    # Set by serving/entrypoint.sh from the ports TorchServe was started with.
    inference_url: str = "http://127.0.0.1:8080"
    management_url: str = "http://127.0.0.1:8081"
    # The sam2 / sam3 model names, comma separated (replicas: sam2-0,sam2-1,...); unset sam2: router.yaml's
    # route, else "sam2"; no sam3: empty.
    sam2_models: str = ""
    sam3_models: str = ""
    # The API's body limit (the router answers a clear 413 above it) and TorchServe's max_response_size, over
    # which a worker's answer kills it: the entrypoint sets both from SageMaker's limits (batch: its own).
    max_request_bytes: int = Field(6_553_600, gt=0)
    max_response_bytes: int = Field(TORCHSERVE_MAX_RESPONSE_BYTES, gt=RESPONSE_FRAME_BYTES)
    # The router's TorchServe timeout: a batch must be answered 5 s before it.
    router_timeout_s: float = Field(65.0, gt=5)
    # Custom attributes for raw images sent without any (batch transform over a bucket cannot set them).
    default_attributes: str | None = None
    # How request images are read: by the models, and by the router when it must know an image's id.
    max_pixels: int = Field(DEFAULT_MAX_PIXELS, gt=0)
    max_image_bytes: int = Field(20 * 1024 * 1024, gt=0)
    fetch_timeout_s: float = Field(10.0, gt=0)
    # Let image_url reach private and loopback addresses (an image server inside your VPC). The instance
    # metadata service (link-local) stays refused even then. Off by default: SSRF.
    allow_private_image_urls: bool = False

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> ServingEnvironment:
        values = {name: environ[f"SEGSERVE_{name.upper()}"] for name in cls.model_fields
                  if f"SEGSERVE_{name.upper()}" in environ}
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            raise WeightsError(f"invalid SEGSERVE_* environment variable: {exc}") from None

    @property
    def answer_limit_bytes(self) -> int:
        """The largest answer a worker may send: TorchServe's limit less room for its own framing."""
        return self.max_response_bytes - RESPONSE_FRAME_BYTES

    def image_loader(self) -> ImageLoader:
        policy = FetchPolicy(
            max_bytes=self.max_image_bytes, total_timeout=self.fetch_timeout_s, s3_reader=_s3_reader(),
            allow_address=is_unicast_outside_metadata if self.allow_private_image_urls else is_public_address,
        )
        return ImageLoader(policy, self.max_pixels)


class ModelSettings(_Settings):
    weights: str = "weights"  # the weights bundle folder, relative to the model's directory
    device: str | None = None  # None: the GPU TorchServe assigned, else the CPU
    # torch.compile the SAM2 image encoder on CUDA (max-autotune, as Meta's compile_image_encoder); paid at
    # worker start by the warm-up, minutes. Ignored on the CPU.
    compile: bool = False
    # CPU only: torch threads for this worker. None: the cores shared between the two model workers, so
    # that langsam and sam2 do not fight over them (short decodes suffer most from oversubscription).
    cpu_threads: int | None = Field(None, ge=1)
    # The SAM2 embedding cache (the sam2 model; models/embedding_cache.py): the bytes its entries may hold
    # (each: ~16 MiB of fp32 embedding on the device + the image's pixels in host memory); 0 turns it off.
    embedding_cache_bytes: int = Field(1024 * 1024 * 1024, ge=0)
    # langsam: how long it waits for the sam2 model's box masks (within its own 60 s response timeout)
    sam2_timeout_s: float = Field(55.0, gt=0)
    # Lang-SAM defaults for requests that do not set them
    box_threshold: float = Field(_DETECTION.box_threshold, ge=0, le=1)
    text_threshold: float = Field(_DETECTION.text_threshold, ge=0, le=1)
    max_detections: int = Field(_DETECTION.max_detections, ge=1, le=MAX_DETECTIONS_LIMIT)
    refine_prompt: bool = _DETECTION.refine_prompt
    llm: LlmSettings = LlmSettings()  # the prompt refiner's LLM (langsam)

    def detection_params(self) -> DetectionParams:
        return DetectionParams(self.box_threshold, self.text_threshold, self.max_detections, self.refine_prompt)

    def prompt_refiner(self, endpoint: LlmEndpoint, check_prompt: PromptCheck) -> PromptRefiner:
        """The LLM refiner when a key is configured, else the null one (whose warning says why)."""
        if endpoint.api_key is None:
            log.log(logging.WARNING if self.refine_prompt else logging.INFO, "prompt refinement off: %s",
                    endpoint.problem)
            return NullRefiner(endpoint.problem)
        log.info("prompt refinement: LLM %s at %s", self.llm.model, endpoint.base_url or "the openai default URL")
        import openai  # takes seconds: only a langsam worker with a key loads it

        from segserve.prompts.cache import RefinementCache
        from segserve.prompts.cooldown import Cooldown
        from segserve.prompts.refiner import LlmPromptRefiner

        client = openai.OpenAI(api_key=endpoint.api_key, base_url=endpoint.base_url,
                               timeout=self.llm.timeout_s, max_retries=self.llm.max_retries)
        return LlmPromptRefiner(client, self.llm.model, RefinementCache(self.llm.cache_entries), check_prompt,
                                self.llm.temperature, Cooldown(self.llm.cooldown_s))


def _s3_reader():
    """Reads s3:// URLs with the endpoint's role when boto3 (the "aws" extra) is installed."""
    try:
        import boto3
    except ImportError:
        return None
    client = boto3.client("s3")
    return lambda bucket, key, max_bytes: read_s3_object(bucket, key, max_bytes, client)


class RouterSettings(_Settings):
    """The router's `handler:` section; the model addresses and limits come from the ServingEnvironment."""

    # action → model name; sam3's is dropped when the entrypoint deployed no sam3 (SEGSERVE_SAM3_MODELS empty)
    routes: dict[str, str] = {"langsam": "langsam", "sam2": "sam2", "sam3": "sam3"}
    forward_timeout_s: float = Field(62.0, gt=0)  # a little over the models' 60 s response timeout
    # A forwarded request with no answer after this long makes the router look at the model's workers (the
    # only management-API call on a healthy path): none loaded → 503 not_ready instead of a request TorchServe
    # holds for a worker that may never come back. Above a cached decode, so that a click never pays one.
    doubt_after_s: float = Field(1.0, gt=0)
    # Retry-After of the 503s: a model worker (re)loading its weights; a model's full queue.
    retry_after_restart_s: int = Field(5, ge=1)
    retry_after_overload_s: int = Field(1, ge=1)
    # SageMaker stateful sessions (routing/sessions.py): the Expires the router announces for a new session.
    session_ttl_s: int = Field(1200, ge=60, le=7 * 24 * 3600)

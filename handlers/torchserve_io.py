"""TorchServe's side of a request, shared by the three handlers (shipped in each archive as an extra file).

Functions only: TorchServe loads a handler module that defines exactly one class, so the handler
classes live in their own files and import these.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from http import HTTPStatus
from pathlib import Path

import torch

from segserve.contract.wire import Reply, header
from segserve.build_info import check_built_with
from segserve.models.embedding_cache import CacheStats, EmbeddingCache
from segserve.models.runtime import Runtime
from segserve.settings import ModelSettings
from segserve.weights.bundle import WeightsBundle


def start_worker(context) -> None:
    """Every handler's first step: segserve's log lines get their level and logger name, and a model folder
    built by another segserve version is refused (both versions named)."""
    _log_with_levels()
    check_built_with(Path(context.system_properties["model_dir"]), context.model_name)


def _log_with_levels() -> None:
    """TorchServe's worker logs bare messages to stdout, which its frontend files all as INFO. segserve's lines
    say "WARNING segserve.x: ...", so that serving/log4j2.xml can put warnings, errors and the router's request
    lines (segserve.requests) on the console and leave the rest in logs/model_log.log."""
    logger = logging.getLogger("segserve")
    if logger.handlers:
        return
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False


def settings(context) -> ModelSettings:
    return ModelSettings.from_config((getattr(context, "model_yaml_config", None) or {}).get("handler"))


def runtime_for(context, model_settings: ModelSettings) -> Runtime:
    """The GPU TorchServe assigned to this worker, else the CPU (or the device the settings name)."""
    gpu_id = context.system_properties.get("gpu_id")
    if model_settings.device:
        runtime = Runtime.select(model_settings.device)
    elif gpu_id is not None and torch.cuda.is_available():
        runtime = Runtime.select(f"cuda:{gpu_id}")
    else:
        runtime = Runtime.select("cpu")
    if runtime.device.type == "cpu":
        torch.set_num_threads(model_settings.cpu_threads or max(1, (os.cpu_count() or 2) // 2))
    return runtime


def weights_bundle(context, model_settings: ModelSettings) -> WeightsBundle:
    model_dir = Path(context.system_properties["model_dir"])
    return WeightsBundle.load(model_dir / model_settings.weights)


def model_info(context) -> dict:
    """The serving model's name and version, echoed in answers (routing follows the default version)."""
    return {"name": context.model_name, "version": context.manifest.get("model", {}).get("modelVersion")}


def serve_batch(data: list, context, invoke) -> list[bytes]:
    """Answer each request of a TorchServe batch on its own: one bad request never fails the others."""
    replies = []
    for idx, row in enumerate(data):
        body, content_type, headers = _request_parts(row, context, idx)
        reply = invoke(body, content_type, headers, context.get_request_id(idx))
        replies.append(_respond(context, idx, reply))
    return replies


def _request_parts(row: dict, context, idx: int) -> tuple[bytes, str | None, dict]:
    properties = context.get_all_request_header(idx)
    headers = {k: v for k, v in properties.items() if isinstance(v, str)}
    name, body = next(((k, v) for k, v in row.items() if k in ("body", "data")), (None, b""))
    if isinstance(body, (dict, list)):  # only if decode_input_request was left on
        body = json.dumps(body).encode()
    elif isinstance(body, str):
        body = body.encode()
    # TorchServe keeps the body's content type with the parameter, not among the request headers.
    parameter = properties.get(name) if name else None
    content_type = parameter.get("content-type") if isinstance(parameter, dict) else None
    return bytes(body), content_type or header(headers, "Content-Type"), headers


def _respond(context, idx: int, reply: Reply) -> bytes:
    context.set_response_status(reply.status, HTTPStatus(reply.status).phrase, idx)  # TorchServe: index LAST here...
    context.set_response_content_type(idx, reply.content_type)  # ...and FIRST here
    for name, value in reply.headers.items():
        context.set_response_header(idx, name, value)  # TorchServe passes these to the client unchanged
    for stage, ms in reply.timings.items():
        context.metrics.add_time("SegmentationStageTime", ms, None, "ms", dimensions=_dimensions(context, stage))
    return reply.body


def publish_cache_metrics(context, cache: EmbeddingCache, published: CacheStats | None) -> CacheStats:
    """The cache's counters as Prometheus metrics: hits/misses/evictions as counters (the increase since
    `published`, the last stats sent), bytes and entries held as gauges. Returns the stats now sent."""
    from ts.metrics.dimension import Dimension
    from ts.metrics.metric_type_enum import MetricTypes

    now = cache.stats()
    model = context.model_name
    for name, field in (("Hits", "hits"), ("Misses", "misses"), ("Evictions", "evictions")):
        increase = getattr(now, field) - (getattr(published, field) if published else 0)
        if increase:
            context.metrics.add_counter(f"SegmentationCache{name}", increase, None, [Dimension("ModelName", model)])
    context.metrics.add_size("SegmentationCacheBytes", now.bytes, None, "B", [Dimension("ModelName", model)])
    context.metrics.add_metric("SegmentationCacheEntries", now.entries, "count", None, [Dimension("ModelName", model)],
                               MetricTypes.GAUGE)
    return now


def _dimensions(context, stage: str) -> list:
    from ts.metrics.dimension import Dimension

    return [Dimension("ModelName", context.model_name), Dimension("Stage", stage)]

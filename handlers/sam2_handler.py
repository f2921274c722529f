"""TorchServe handler for action "sam2" (points and/or boxes → SAM2 masks): a thin adapter over segserve.

The one owner of SAM2 and its embedding cache: the langsam model asks this one for its box masks.
"""

from segserve.inference.invocation import Invoker
from segserve.inference.services import Sam2Service
from segserve.models.embedding_cache import embedding_cache
from segserve.models.sam2_pipeline import Sam2Pipeline
from segserve.models.warmup import warm_up_sam2
from segserve.settings import ServingEnvironment
from torchserve_io import (
    start_worker, model_info, publish_cache_metrics, runtime_for, serve_batch, settings, weights_bundle,
)


class Sam2Handler:
    def initialize(self, context):
        start_worker(context)
        config = settings(context)
        env = ServingEnvironment.from_env()
        runtime = runtime_for(context, config)
        pipeline = Sam2Pipeline.from_bundle(weights_bundle(context, config), runtime, config.compile)
        warm_up_sam2(pipeline)  # before the cache exists: nothing of it is cached
        self.cache = embedding_cache(config.embedding_cache_bytes)
        self.published = None  # the cache stats last sent as metrics
        service = Sam2Service(pipeline, env.image_loader(), self.cache)
        self.invoke = Invoker([service], runtime, env.answer_limit_bytes, model_info(context))

    def handle(self, data, context):
        replies = serve_batch(data, context, self.invoke)
        self.published = publish_cache_metrics(context, self.cache, self.published)
        return replies

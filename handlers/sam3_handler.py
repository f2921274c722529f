"""TorchServe handler for action "sam3" (phrases / exemplar boxes → every instance; clicks): a thin adapter.

Registered by the entrypoint only when the weights bundle has SAM 3; owns its own encoding cache.
"""

from segserve.contract.errors import WeightsError
from segserve.inference.invocation import Invoker
from segserve.inference.sam3_service import Sam3Service
from segserve.models.embedding_cache import embedding_cache
from segserve.models.sam3_pipeline import Sam3Pipeline
from segserve.models.warmup import warm_up_sam3
from segserve.settings import ServingEnvironment
from torchserve_io import (
    start_worker, model_info, publish_cache_metrics, runtime_for, serve_batch, settings, weights_bundle,
)


class Sam3Handler:
    def initialize(self, context):
        start_worker(context)
        config = settings(context)
        env = ServingEnvironment.from_env()
        runtime = runtime_for(context, config)
        bundle = weights_bundle(context, config)
        if bundle.sam3_dir is None:
            raise WeightsError("this model's weights bundle has no SAM 3 folder (manifest.json: \"sam3\": null)")
        pipeline = Sam3Pipeline.from_folder(bundle.sam3_dir, runtime)
        warm_up_sam3(pipeline)  # before the cache exists: nothing of it is cached
        self.cache = embedding_cache(config.embedding_cache_bytes)
        self.published = None  # the cache stats last sent as metrics
        service = Sam3Service(pipeline, env.image_loader(), self.cache)
        self.invoke = Invoker([service], runtime, env.answer_limit_bytes, model_info(context))

    def handle(self, data, context):
        replies = serve_batch(data, context, self.invoke)
        self.published = publish_cache_metrics(context, self.cache, self.published)
        return replies

"""TorchServe handler for action "sam2" (points and/or a box → SAM2 masks): a thin adapter over segserve."""

from segserve.api.invocation import Invoker
from segserve.models.sam2_pipeline import Sam2Pipeline
from segserve.api.services import Sam2Service
from torchserve_io import model_info, runtime_for, serve_batch, settings, weights_bundle


class Sam2Handler:
    def initialize(self, context):
        config = settings(context)
        runtime = runtime_for(context, config)
        bundle = weights_bundle(context, config)
        pipeline = Sam2Pipeline.from_checkpoint(bundle.sam2_checkpoint, bundle.sam2_config, runtime, config.compile)
        service = Sam2Service(pipeline, config.image_loader())
        self.invoke = Invoker([service], runtime, config.max_response_bytes, model_info(context))

    def handle(self, data, context):
        return serve_batch(data, context, self.invoke)

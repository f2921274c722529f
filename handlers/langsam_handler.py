"""TorchServe handler for action "langsam" (text → GroundingDINO boxes → SAM2 masks): a thin adapter over segserve."""

from segserve.api.invocation import Invoker
from segserve.models.langsam_pipeline import LangSamPipeline
from segserve.api.services import LangSamService
from torchserve_io import model_info, runtime_for, serve_batch, settings, weights_bundle


class LangSamHandler:
    def initialize(self, context):
        config = settings(context)
        runtime = runtime_for(context, config)
        bundle = weights_bundle(context, config)
        pipeline = LangSamPipeline.from_bundle(bundle, runtime, config.compile)
        service = LangSamService(pipeline, config.image_loader(), config.detection_params())
        self.invoke = Invoker([service], runtime, config.max_response_bytes, model_info(context))

    def handle(self, data, context):
        return serve_batch(data, context, self.invoke)

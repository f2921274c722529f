"""TorchServe handler for action "langsam" (text → GroundingDINO boxes → SAM2 masks): a thin adapter over segserve.

This model runs GroundingDINO only; the sam2 model (the one owner of SAM2 and its embedding cache) decodes
the boxes, over loopback, on the image's home sam2 model.
"""

import os

from segserve.inference.invocation import Invoker
from segserve.inference.sam2_client import Sam2Client
from segserve.inference.services import LangSamService
from segserve.models.grounding_dino import GroundingDinoDetector
from segserve.models.warmup import warm_up_detector
from segserve.routing.affinity import SAM2_MODELS_ENV, home_model, sam2_models
from segserve.routing.loopback import LoopbackClient
from segserve.prompts.llm_endpoint import llm_endpoint
from torchserve_io import start_worker, model_info, runtime_for, serve_batch, settings, weights_bundle


class LangSamHandler:
    def initialize(self, context):
        start_worker(context)
        config = settings(context)
        runtime = runtime_for(context, config)
        detector = GroundingDinoDetector.from_bundle(weights_bundle(context, config), runtime)
        warm_up_detector(detector)
        # Set by serving/entrypoint.sh from the ports TorchServe was started with.
        self.loopback = LoopbackClient(os.environ.get("SEGSERVE_INFERENCE_URL", "http://127.0.0.1:8080"),
                                       config.sam2_timeout_s)
        models = sam2_models(os.environ.get(SAM2_MODELS_ENV))
        sam2 = Sam2Client(self._post, lambda image_id: home_model(image_id, models))
        refiner = config.prompt_refiner(llm_endpoint(os.environ), detector.prompt_problem)
        service = LangSamService(detector, sam2, config.image_loader(), config.detection_params(), refiner)
        self.invoke = Invoker([service], runtime, config.max_response_bytes, model_info(context))

    def handle(self, data, context):
        return serve_batch(data, context, self.invoke)

    def _post(self, model, body, headers):
        return self.loopback.request("POST", f"/predictions/{model}", body, headers)

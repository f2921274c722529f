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
from segserve.routing.affinity import home_model, sam2_models
from segserve.routing.loopback import LoopbackClient
from segserve.prompts.llm_endpoint import llm_endpoint
from segserve.settings import ServingEnvironment
from torchserve_io import model_info, runtime_for, serve_batch, settings, start_worker, weights_bundle


class LangSamHandler:
    def initialize(self, context):
        start_worker(context)
        config = settings(context)
        runtime = runtime_for(context, config)
        detector = GroundingDinoDetector.from_bundle(weights_bundle(context, config), runtime)
        warm_up_detector(detector)
        env = ServingEnvironment.from_env()
        self.loopback = LoopbackClient(env.inference_url, config.sam2_timeout_s)
        models = sam2_models(env.sam2_models)
        sam2 = Sam2Client(self._post, lambda image_id: home_model(image_id, models))
        refiner = config.prompt_refiner(llm_endpoint(os.environ), detector.prompt_problem)
        service = LangSamService(detector, sam2, env.image_loader(), config.detection_params(), refiner)
        self.invoke = Invoker([service], runtime, env.answer_limit_bytes, model_info(context))

    def handle(self, data, context):
        return serve_batch(data, context, self.invoke)

    def _post(self, model, body, headers):
        return self.loopback.request("POST", f"/predictions/{model}", body, headers)

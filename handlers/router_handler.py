"""TorchServe handler of the "router" model: the one model /invocations resolves; forwards by `action`."""

import os

from segserve.routing.affinity import SAM2_MODELS_ENV, SAM3_MODELS_ENV, ImageHomes, model_names, sam2_models
from segserve.routing.faults import RetryAfter
from segserve.routing.loopback import LoopbackClient
from segserve.routing.router import Router
from segserve.settings import RouterSettings
from torchserve_io import start_worker, serve_batch


class RouterHandler:
    def initialize(self, context):
        start_worker(context)
        config = RouterSettings.from_config((context.model_yaml_config or {}).get("handler"))
        # Set by serving/entrypoint.sh from the ports TorchServe was started with.
        self.models = LoopbackClient(
            os.environ.get("SEGSERVE_INFERENCE_URL", "http://127.0.0.1:8080"), config.forward_timeout_s,
            slow_s=config.doubt_after_s,
        )
        self.management = LoopbackClient(os.environ.get("SEGSERVE_MANAGEMENT_URL", "http://127.0.0.1:8081"), 5.0)
        # sam2, or its single-worker replicas sam2-0..N-1 (SEGSERVE_WORKERS_SAM2 > 1): each image to its home one.
        loader = config.image_loader()
        homes = [ImageHomes("sam2", sam2_models(os.environ.get(SAM2_MODELS_ENV) or config.routes.get("sam2")), loader)]
        routes = dict(config.routes)
        sam3 = model_names(os.environ.get(SAM3_MODELS_ENV))
        if sam3:
            homes.append(ImageHomes("sam3", sam3, loader))
        else:
            routes.pop("sam3", None)  # answered with 400 not_deployed
        self.route = Router(
            self._forward, self._describe, routes,
            max_request_bytes=int(os.environ.get("SEGSERVE_MAX_REQUEST_BYTES", "6553600")),
            max_response_bytes=int(os.environ.get("SEGSERVE_MAX_RESPONSE_BYTES", "6553600")),
            # A batch must be answered a little before TorchServe's timeout for the router would kill it.
            batch_seconds=float(os.environ.get("SEGSERVE_ROUTER_TIMEOUT_S", "65")) - 5.0,
            default_attributes=os.environ.get("SEGSERVE_DEFAULT_ATTRIBUTES"),
            retry_after=RetryAfter(config.retry_after_restart_s, config.retry_after_overload_s),
            homes=homes, session_ttl_s=config.session_ttl_s,
        )

    def handle(self, data, context):
        return serve_batch(data, context, self.route)

    def _forward(self, model, body, headers, on_slow):
        return self.models.request("POST", f"/predictions/{model}", body, headers, on_slow)

    def _describe(self, model):
        try:
            status, description = self.management.get_json(f"/models/{model}")
        except OSError:
            return None
        return description if status == 200 else None

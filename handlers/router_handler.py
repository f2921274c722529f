"""TorchServe handler of the "router" model: the one model /invocations resolves; forwards by `action`."""

from segserve.routing.affinity import ImageHomes, model_names, sam2_models
from segserve.routing.faults import RetryAfter
from segserve.routing.loopback import LoopbackClient
from segserve.routing.router import Router
from segserve.settings import RouterSettings, ServingEnvironment
from torchserve_io import serve_batch, start_worker


class RouterHandler:
    def initialize(self, context):
        start_worker(context)
        config = RouterSettings.from_config((context.model_yaml_config or {}).get("handler"))
        env = ServingEnvironment.from_env()
        self.models = LoopbackClient(env.inference_url, config.forward_timeout_s, slow_s=config.doubt_after_s)
        self.management = LoopbackClient(env.management_url, 5.0)
        # sam2, or its single-worker replicas sam2-0..N-1 (SEGSERVE_WORKERS_SAM2 > 1): each image to its home one.
        loader = env.image_loader()
        homes = [ImageHomes("sam2", sam2_models(env.sam2_models or config.routes.get("sam2")), loader)]
        routes = dict(config.routes)
        sam3 = model_names(env.sam3_models)
        if sam3:
            homes.append(ImageHomes("sam3", sam3, loader))
        else:
            routes.pop("sam3", None)  # answered with 400 not_deployed
        self.route = Router(
            self._forward, self._describe, routes,
            max_request_bytes=env.max_request_bytes,
            max_response_bytes=env.answer_limit_bytes,
            # A batch must be answered a little before TorchServe's timeout for the router would kill it.
            batch_seconds=env.router_timeout_s - 5.0,
            default_attributes=env.default_attributes,
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

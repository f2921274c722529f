"""Which sam2 model holds an image's embedding, the same answer in every router and langsam process.

Each sam2 worker process has its own embedding cache, and TorchServe hands a model's requests to any of its
workers. So with more than one, the entrypoint registers sam2 as N single-worker models (sam2-0 ... sam2-N-1,
listed in SEGSERVE_SAM2_MODELS) and every request about an image goes to the one its id hashes to: its
"home". With one model (the default) there is nothing to choose and nothing is computed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from segserve.contract.requests import parse_request
from segserve.media.image_loading import ImageLoader



def model_names(value: str | None) -> tuple[str, ...]:
    """Model names from a comma-separated list ("sam2" or "sam2-0,sam2-1"), each once; () when empty."""
    return tuple(dict.fromkeys(part.strip() for part in (value or "").split(",") if part.strip()))


def sam2_models(value: str | None) -> tuple[str, ...]:
    """The sam2 model names from SEGSERVE_SAM2_MODELS; ("sam2",) when unset."""
    return model_names(value) or ("sam2",)


def home_model(image_id: str, models: Sequence[str]) -> str:
    """The model an image id belongs to: a stable hash (not Python's per-process `hash`) over the models."""
    if len(models) == 1:
        return models[0]
    digest = hashlib.blake2b(image_id.encode(), digest_size=8).digest()
    return models[int.from_bytes(digest, "big") % len(models)]


class ImageHomes:
    """Sends one action's requests to the home model of their image, among that action's single-worker models.

    A request by `image_id` names its id; one that carries the image (base64, URL or raw body) is read here
    with the models' own loader to compute it (only when there are several models: one costs nothing).
    """

    def __init__(self, action: str, models: Sequence[str], loader: ImageLoader):
        self.action = action
        self.models = tuple(models)
        self.loader = loader

    def model_for(self, payload: object, raw_image: bytes | None) -> str:
        if len(self.models) == 1:
            return self.models[0]
        image_id = payload.get("image_id") if isinstance(payload, dict) else None
        if not isinstance(image_id, str):
            # The same validation as the model's, so a bad request is refused here exactly as it would be there.
            request = parse_request(payload, strict=raw_image is None, raw_image=raw_image is not None)
            image_id = self.loader.load(request, raw_image).image_id
        return home_model(image_id, self.models)

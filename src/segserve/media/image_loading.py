"""A request's image, whichever way it came: base64, a URL (http/https/s3) or a raw request body."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np

from segserve.contract.errors import ImageNotCached
from segserve.media.image_fetch import DEFAULT_POLICY, FetchPolicy, fetch_image_bytes
from segserve.media.images import DEFAULT_MAX_PIXELS, decode_base64, decode_image
from segserve.contract.requests import ImageRequest


def image_id_of(pixels: np.ndarray) -> str:
    """A content id for decoded pixels: the same picture gets the same id however it was sent."""
    digest = hashlib.blake2b(pixels.tobytes(), digest_size=16)
    digest.update(str(pixels.shape).encode())
    return digest.hexdigest()


@dataclass(frozen=True, eq=False)
class LoadedImage:
    pixels: np.ndarray  # (H, W, 3) uint8 RGB, EXIF orientation applied
    image_id: str
    source: bytes  # the encoded file as received (JPEG, PNG...): forwarded as it is, never re-encoded

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])


@dataclass(frozen=True)
class ImageLoader:
    fetch_policy: FetchPolicy = field(default=DEFAULT_POLICY)
    max_pixels: int = DEFAULT_MAX_PIXELS

    def load(self, request: ImageRequest, raw_image: bytes | None = None) -> LoadedImage:
        if raw_image is not None:
            data, field = raw_image, "body"
        elif request.image is not None:
            data, field = decode_base64(request.image), "image"
        elif request.image_url is not None:
            data, field = fetch_image_bytes(request.image_url, self.fetch_policy), "image_url"
        else:  # an image_id: only the embedding cache holds its pixels
            raise ImageNotCached(request.image_id)
        pixels = decode_image(data, self.max_pixels, field=field)
        return LoadedImage(pixels, image_id_of(pixels), data)

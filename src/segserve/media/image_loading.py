"""A request's image, whichever way it came: base64, a URL (http/https/s3) or a raw request body.

Ids are BLAKE3 digests (cryptographic, so that nobody can make an image whose id is another's cached one, and
~6 ms for a 12 MP image where BLAKE2b over a copy took ~80). A loader also remembers which image id each
encoded file it has decoded had: the same bytes again get their id without a decode, and the pixels are
decoded only if something asks for them (an embedding-cache hit never does).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import blake3
import numpy as np

from segserve.contract.errors import ImageNotCached
from segserve.contract.requests import ImageRequest
from segserve.lru import Lru
from segserve.media.image_fetch import DEFAULT_POLICY, FetchPolicy, fetch_image_bytes
from segserve.media.images import DEFAULT_MAX_PIXELS, decode_base64, decode_image

KNOWN_FILES = 4096  # encoded-file digests remembered per loader (~100 bytes each)


def image_id_of(pixels: np.ndarray) -> str:
    """A content id for decoded pixels: the same picture gets the same id however it was sent."""
    digest = blake3.blake3(memoryview(np.ascontiguousarray(pixels)).cast("B"))
    digest.update(str(pixels.shape).encode())
    return digest.hexdigest(length=16)


@dataclass(eq=False)
class LoadedImage:
    _pixels: np.ndarray | None  # (H, W, 3) uint8 RGB, EXIF orientation applied; None until decoded
    image_id: str
    source: bytes  # the encoded file as received (JPEG, PNG...): forwarded as it is, never re-encoded
    decode: Callable[[], np.ndarray] | None = field(default=None, repr=False)

    @property
    def pixels(self) -> np.ndarray:
        if self._pixels is None:
            self._pixels = self.decode()
        return self._pixels


@dataclass(frozen=True)
class ImageLoader:
    fetch_policy: FetchPolicy = field(default=DEFAULT_POLICY)
    max_pixels: int = DEFAULT_MAX_PIXELS
    known_files: Lru[str, str] = field(default_factory=lambda: Lru(KNOWN_FILES), compare=False, repr=False)

    def load(self, request: ImageRequest, raw_image: bytes | None = None) -> LoadedImage:
        if raw_image is not None:
            data, field_name = raw_image, "body"
        elif request.image is not None:
            data, field_name = decode_base64(request.image), "image"
        elif request.image_url is not None:
            data, field_name = fetch_image_bytes(request.image_url, self.fetch_policy), "image_url"
        else:  # an image_id: only the embedding cache holds its pixels
            raise ImageNotCached(request.image_id)
        file_digest = blake3.blake3(data).hexdigest()
        known = self.known_files.get(file_digest)
        if known is not None:  # decoded before, within the limits: decode again only if asked to
            return LoadedImage(None, known, data, lambda: decode_image(data, self.max_pixels, field=field_name))
        pixels = decode_image(data, self.max_pixels, field=field_name)
        image = LoadedImage(pixels, image_id_of(pixels), data)
        self.known_files.put(file_digest, image.image_id)
        return image

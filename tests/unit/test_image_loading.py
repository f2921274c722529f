"""Image ids and the loader's memory of encoded files: the same bytes again cost a digest, not a decode."""

from __future__ import annotations

import base64
import hashlib
import io

import numpy as np
import pytest
from PIL import Image

from segserve.contract.errors import ServiceError
from segserve.contract.requests import parse_request
from segserve.media import image_loading
from segserve.media.image_loading import ImageLoader, image_id_of


def encoded(pixels: np.ndarray, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format=fmt, **options)
    return buffer.getvalue()


def request(data: bytes):
    return parse_request({"action": "sam2", "image": base64.b64encode(data).decode(), "x": 1, "y": 1})


@pytest.fixture
def decodes(monkeypatch):
    """Counts the loader's decodes."""
    calls = []
    real = image_loading.decode_image

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(image_loading, "decode_image", counting)
    return calls


def test_the_id_is_a_32_hex_digest_of_pixels_and_shape():
    pixels = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    image_id = image_id_of(pixels)
    assert len(image_id) == 32 and int(image_id, 16) >= 0
    assert image_id_of(pixels.copy()) == image_id
    assert image_id_of(pixels.reshape(3, 2, 3)) != image_id  # same bytes, other shape
    changed = pixels.copy()
    changed[1, 2, 0] ^= 1
    assert image_id_of(changed) != image_id
    assert image_id_of(np.asfortranarray(pixels)) == image_id  # the layout in memory does not matter


def test_the_same_bytes_again_get_their_id_without_a_decode(scene, decodes):
    loader = ImageLoader()
    png = encoded(scene, "PNG")
    first = loader.load(request(png))
    assert len(decodes) == 1 and first.image_id == image_id_of(scene)
    again = loader.load(request(png))
    assert again.image_id == first.image_id and again.source == png
    assert len(decodes) == 1, "a repeat of known bytes is not decoded"
    np.testing.assert_array_equal(again.pixels, scene)  # ...until its pixels are asked for
    assert len(decodes) == 2


def test_other_bytes_of_the_same_picture_get_the_same_id_and_are_decoded(scene, decodes):
    loader = ImageLoader()
    png, bmp = encoded(scene, "PNG"), encoded(scene, "BMP")
    assert hashlib.sha256(png).digest() != hashlib.sha256(bmp).digest()
    assert loader.load(request(png)).image_id == loader.load(request(bmp)).image_id
    assert len(decodes) == 2


def test_bytes_that_failed_to_decode_are_not_remembered(decodes):
    loader = ImageLoader()
    for _ in range(2):
        with pytest.raises(ServiceError, match="unrecognised image format"):
            loader.load(request(b"not an image"))
    assert len(decodes) == 2 and len(loader.known_files) == 0


def test_the_memory_is_bounded(scene, monkeypatch):
    monkeypatch.setattr(image_loading, "KNOWN_FILES", 2)
    loader = ImageLoader()
    for value in range(4):
        loader.load(request(encoded(np.full((4, 4, 3), value, np.uint8), "PNG")))
    assert len(loader.known_files) == 2

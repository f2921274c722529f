"""Property-based tests of the codecs (hypothesis): masks round-trip through every format, and untrusted
input (RLE objects, image bytes, base64 text) gives a result or a client error, never another exception."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from PIL import Image
from pycocotools import mask as coco_mask

from segserve.contract.errors import InvalidRequest, PayloadTooLarge, ServiceError
from segserve.media.images import decode_base64_image, decode_image, encode_png
from segserve.media.masks import (
    decode_mask_png, decode_rle, encode_mask_png, encode_rle, mask_bbox, mask_to_polygons,
)
from tests.unit.test_masks import rasterise

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
MAX_PIXELS = 4096  # keeps every generated mask or image small

masks = st.tuples(st.integers(1, 40), st.integers(1, 40)).flatmap(lambda shape: arrays(bool, shape))
json_scalars = st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.floats(allow_nan=False) | st.text(max_size=20)
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=5)
                           | st.dictionaries(st.text(max_size=8), inner, max_size=5), max_leaves=20)


@SETTINGS
@given(masks)
def test_rle_round_trips_and_agrees_with_pycocotools(mask):
    rle = encode_rle(mask)
    assert np.array_equal(decode_rle(rle), mask)
    assert np.array_equal(coco_mask.decode({"size": rle["size"], "counts": rle["counts"].encode()}).astype(bool), mask)


@SETTINGS
@given(masks)
def test_uncompressed_rle_counts_decode_to_the_same_mask(mask):
    flat = mask.T.ravel()  # COCO runs go down the columns, starting with a run of zeros
    changes = np.flatnonzero(np.diff(flat.astype(np.int8))) + 1
    edges = [0, *changes.tolist(), flat.size]
    runs = np.diff(edges).tolist()
    if flat[0]:
        runs = [0, *runs]
    assert np.array_equal(decode_rle({"size": list(mask.shape), "counts": runs}), mask)


@SETTINGS
@given(masks)
def test_mask_png_round_trips(mask):
    assert np.array_equal(decode_mask_png(encode_mask_png(mask)), mask)


@SETTINGS
@given(masks)
def test_polygons_cover_the_mask_within_its_box(mask):
    polygons = mask_to_polygons(mask)
    filled = rasterise(polygons, mask.shape)
    assert not (mask & ~filled).any(), "a mask pixel is outside its polygons"
    assert mask_bbox(filled) == mask_bbox(mask)
    assert all(len(polygon) >= 8 and len(polygon) % 2 == 0 for polygon in polygons)


@SETTINGS
@given(st.integers(1, 40), st.integers(1, 40), st.data())
def test_polygons_of_a_rectangle_rasterise_to_exactly_it(height, width, data):
    top, bottom = sorted(data.draw(st.lists(st.integers(0, height), min_size=2, max_size=2, unique=True)))
    left, right = sorted(data.draw(st.lists(st.integers(0, width), min_size=2, max_size=2, unique=True)))
    mask = np.zeros((height, width), bool)
    mask[top:bottom, left:right] = True
    assert np.array_equal(rasterise(mask_to_polygons(mask), mask.shape), mask)


@SETTINGS
@given(json_values | st.fixed_dictionaries({"size": json_values, "counts": json_values})
       | st.fixed_dictionaries({"size": st.lists(st.integers(-2, 70), max_size=3),
                                "counts": st.text(max_size=40) | st.lists(st.integers(-5, 5000), max_size=8)}))
def test_decode_rle_of_anything_gives_a_mask_or_a_client_error(rle):
    try:
        mask = decode_rle(rle, max_pixels=MAX_PIXELS)
    except (InvalidRequest, PayloadTooLarge) as error:
        assert error.field and error.field.startswith("mask"), error.field
        return
    assert mask.dtype == bool and mask.shape == tuple(rle["size"])


def _image_file(fmt: str, size: tuple[int, int], mode: str) -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size, 128).save(buffer, format=fmt)
    return buffer.getvalue()


VALID_FILES = [_image_file(fmt, (5, 3), mode) for fmt, mode in
               (("PNG", "RGBA"), ("JPEG", "RGB"), ("GIF", "P"), ("BMP", "RGB"), ("TIFF", "I;16"), ("WEBP", "RGB"))]


@st.composite
def damaged_files(draw) -> bytes:
    """A real image file truncated, with bytes overwritten, or with bytes inserted."""
    data = bytearray(draw(st.sampled_from(VALID_FILES)))
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(data)))
        action = draw(st.sampled_from(["cut", "flip", "insert"]))
        if action == "cut":
            del data[at:]
        elif action == "flip" and at < len(data):
            data[at] = draw(st.integers(0, 255))
        else:
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
    return bytes(data)


def _check_decoded_or_refused(decode) -> None:
    try:
        pixels = decode()
    except ServiceError as error:
        assert 400 <= error.status < 500, error
        return
    assert pixels.dtype == np.uint8 and pixels.ndim == 3 and pixels.shape[2] == 3
    assert pixels.shape[0] * pixels.shape[1] <= MAX_PIXELS


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300) | damaged_files())
def test_decode_image_of_any_bytes_gives_rgb_pixels_or_a_client_error(data):
    _check_decoded_or_refused(lambda: decode_image(data, MAX_PIXELS))


@SETTINGS
@given(st.text(max_size=200) | damaged_files().map(lambda data: base64.b64encode(data).decode())
       | damaged_files().map(lambda data: "data:image/png;base64," + base64.urlsafe_b64encode(data).decode()))
def test_decode_base64_image_of_any_text_gives_rgb_pixels_or_a_client_error(text):
    _check_decoded_or_refused(lambda: decode_base64_image(text, MAX_PIXELS))


@pytest.mark.parametrize("data", VALID_FILES, ids=["png", "jpeg", "gif", "bmp", "tiff16", "webp"])
def test_the_undamaged_files_decode(data):
    """The damaged files start from real files (else the properties above would test only garbage)."""
    assert decode_image(data).shape == (3, 5, 3)


@SETTINGS
@given(arrays(np.uint8, st.tuples(st.integers(1, 30), st.integers(1, 30), st.just(3))))
def test_png_round_trips_rgb_pixels(pixels):
    assert np.array_equal(decode_image(encode_png(pixels)), pixels)

"""Mask encoders, decoders and renderers, checked against pycocotools as the COCO reference."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as coco_mask

from segserve.contract.errors import InvalidImage, InvalidRequest, PayloadTooLarge
from segserve.media.masks import (
    PALETTE,
    decode_mask_png,
    decode_rle,
    encode_mask_png,
    encode_rle,
    mask_bbox,
    mask_to_polygons,
    render_cutout,
    render_mask_only,
    render_overlay,
)

# pycocotools' decode (the reference here; production never calls it) trips numpy 2's copy-keyword deprecation.
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword")

SHAPES = [(1, 1), (7, 13), (13, 7), (64, 48), (3, 200)]


def random_mask(shape: tuple[int, int], density: float, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random(shape) < density


def rectangle(shape=(40, 60), top=10, bottom=20, left=20, right=40) -> np.ndarray:
    mask = np.zeros(shape, bool)
    mask[top:bottom, left:right] = True
    return mask


def disc(shape=(100, 120), centre=(50, 60), radius=30.0) -> np.ndarray:
    rows, columns = np.mgrid[: shape[0], : shape[1]]
    return (rows - centre[0]) ** 2 + (columns - centre[1]) ** 2 < radius**2


def rasterise(polygons: list[list[float]], shape: tuple[int, int]) -> np.ndarray:
    """How a COCO consumer reads polygons back."""
    if not polygons:
        return np.zeros(shape, bool)
    return coco_mask.decode(coco_mask.merge(coco_mask.frPyObjects(polygons, *shape))).astype(bool)


MASKS = {
    **{f"random-{h}x{w}-{density}": random_mask((h, w), density) for h, w in SHAPES for density in (0.1, 0.5, 0.9)},
    "empty": np.zeros((5, 9), bool),
    "full": np.ones((9, 5), bool),
    "rectangle": rectangle(),
    "disc": disc(),
    "large-sparse": rectangle((1500, 2000), 700, 720, 1900, 1999),  # counts that need several chunks each
}


@pytest.mark.parametrize("name", MASKS)
def test_rle_round_trips(name):
    mask = MASKS[name]

    decoded = decode_rle(encode_rle(mask))

    assert decoded.dtype == bool and decoded.flags.c_contiguous
    assert np.array_equal(decoded, mask)


@pytest.mark.parametrize("name", MASKS)
def test_rle_decoding_matches_pycocotools(name):
    rle = encode_rle(MASKS[name])

    reference = coco_mask.decode({"size": rle["size"], "counts": rle["counts"].encode()}).astype(bool)

    assert np.array_equal(decode_rle(rle), reference)


def test_rle_is_json_ready():
    rle = encode_rle(random_mask((30, 20), 0.4))

    assert isinstance(rle["counts"], str) and rle["size"] == [30, 20]
    assert json.loads(json.dumps(rle)) == rle


def test_uncompressed_rle_from_other_tools_decodes_column_major():
    # Runs of 0, 1, 0 down the columns of a 2x3 mask: 1 zero, 2 ones, 3 zeros.
    rle = {"size": [2, 3], "counts": [1, 2, 3]}

    mask = decode_rle(rle)

    assert mask.tolist() == [[False, True, False], [True, False, False]]
    assert np.array_equal(mask, coco_mask.decode(coco_mask.frPyObjects(rle, 2, 3)).astype(bool))


@pytest.mark.parametrize(
    ("rle", "bad_field"),
    [
        ("not an object", "mask"),
        ({"counts": "1"}, "mask.size"),
        ({"size": [2], "counts": "1"}, "mask.size"),
        ({"size": [0, 5], "counts": ""}, "mask.size"),
        ({"size": ["2", "2"], "counts": "4"}, "mask.size"),
        ({"size": [True, 4], "counts": "4"}, "mask.size"),
        ({"size": [2, 2]}, "mask.counts"),
        ({"size": [2, 2], "counts": 4}, "mask.counts"),
        ({"size": [2, 2], "counts": [1.5, 2.5]}, "mask.counts"),
        ({"size": [2, 2], "counts": "1"}, "mask.counts"),  # covers 1 of 4 pixels: pycocotools returns garbage
        ({"size": [2, 2], "counts": [2, 3]}, "mask.counts"),  # covers 5 of 4 pixels
        ({"size": [2, 2], "counts": [5, -1]}, "mask.counts"),
        ({"size": [2, 2], "counts": "1 3"}, "mask.counts"),  # space is outside COCO's alphabet
        ({"size": [2, 2], "counts": "1~"}, "mask.counts"),
    ],
)
def test_decode_rle_rejects_malformed_input_naming_the_field(rle, bad_field):
    with pytest.raises(InvalidRequest) as raised:
        decode_rle(rle)

    assert raised.value.status == 400 and raised.value.field == bad_field


@pytest.mark.parametrize(
    ("counts", "message"),
    [
        ("4P", "middle of a count"),  # "4" alone is a valid 2x2; "P" promises another chunk that never comes
        ("P" * 10_000 + "0", "too large"),  # stopped at 7 chunks instead of building a 50,000-bit integer
    ],
)
def test_decode_rle_rejects_counts_that_do_not_parse(counts, message):
    assert decode_rle({"size": [2, 2], "counts": "4"}).sum() == 0

    with pytest.raises(InvalidRequest, match=message) as raised:
        decode_rle({"size": [2, 2], "counts": counts})

    assert raised.value.field == "mask.counts"


def test_decode_rle_uses_the_callers_field_name():
    with pytest.raises(InvalidRequest) as raised:
        decode_rle({"size": [2, 2], "counts": "1"}, field="previous_mask")

    assert raised.value.field == "previous_mask.counts"


def test_decode_rle_refuses_sizes_over_the_pixel_limit_before_allocating():
    with pytest.raises(PayloadTooLarge) as raised:
        decode_rle({"size": [100_000, 100_000], "counts": [10**10]}, max_pixels=1_000_000)

    assert raised.value.status == 413


@pytest.mark.parametrize("name", MASKS)
def test_mask_png_round_trips(name):
    mask = MASKS[name]

    assert np.array_equal(decode_mask_png(encode_mask_png(mask)), mask)


def test_mask_png_is_single_channel_0_or_255():
    reopened = Image.open(io.BytesIO(encode_mask_png(rectangle())))

    assert reopened.format == "PNG" and reopened.mode == "L"
    assert set(np.unique(np.asarray(reopened)).tolist()) == {0, 255}


def test_decode_mask_png_reads_a_coloured_mask_picture():
    picture = np.zeros((10, 10, 3), np.uint8)
    picture[2:5, 3:8] = (200, 0, 0)
    buffer = io.BytesIO()
    Image.fromarray(picture).save(buffer, format="PNG")

    assert np.array_equal(decode_mask_png(buffer.getvalue()), rectangle((10, 10), 2, 5, 3, 8))


def test_decode_mask_png_reports_corrupt_data_on_the_mask_field():
    with pytest.raises(InvalidImage) as raised:
        decode_mask_png(encode_mask_png(disc())[:200], field="previous_mask")

    assert raised.value.field == "previous_mask"


def test_rectangle_polygon_runs_along_the_pixel_edges():
    polygons = mask_to_polygons(rectangle())

    assert len(polygons) == 1
    corners = set(zip(polygons[0][0::2], polygons[0][1::2], strict=True))
    assert corners == {(20.0, 10.0), (40.0, 10.0), (40.0, 20.0), (20.0, 20.0)}


SINGLE_PIXEL = rectangle((12, 12), 5, 6, 7, 8)
ONE_PIXEL_LINE = rectangle((12, 60), 5, 6, 3, 50)
DIAGONAL = np.eye(30, dtype=bool)
TWO_BARS_ONE_PIXEL_APART = rectangle((30, 30), 5, 25, 10, 11) | rectangle((30, 30), 5, 25, 12, 13)
TOUCHING_THE_BORDER = rectangle((20, 30), 0, 20, 25, 30) | rectangle((20, 30), 0, 3, 0, 30)


@pytest.mark.parametrize(
    "mask",
    [rectangle(), disc(), disc(radius=4.5), SINGLE_PIXEL, ONE_PIXEL_LINE, DIAGONAL, TWO_BARS_ONE_PIXEL_APART,
     TOUCHING_THE_BORDER],
    ids=["rectangle", "disc", "small-disc", "single-pixel", "one-pixel-line", "diagonal", "gap", "border"],
)
def test_polygons_rasterise_back_to_the_same_mask(mask):
    assert np.array_equal(rasterise(mask_to_polygons(mask), mask.shape), mask)


def test_polygons_fill_holes():
    ring = disc(radius=30) & ~disc(radius=10)

    assert np.array_equal(rasterise(mask_to_polygons(ring), ring.shape), disc(radius=30))


def test_polygons_of_noise_are_flat_coordinate_lists_of_at_least_four_corners():
    mask = random_mask((40, 50), 0.3, seed=3)

    polygons = mask_to_polygons(mask)

    assert polygons and all(len(polygon) >= 8 and len(polygon) % 2 == 0 for polygon in polygons)
    assert all(isinstance(value, float) for polygon in polygons for value in polygon)
    assert json.loads(json.dumps(polygons)) == polygons
    assert (rasterise(polygons, mask.shape) >= mask).all()  # holes filled, nothing lost


def test_empty_mask_has_no_polygons():
    assert mask_to_polygons(np.zeros((5, 5), bool)) == []


@pytest.mark.parametrize(
    ("mask", "box"),
    [
        (rectangle(), (20, 10, 40, 20)),
        (SINGLE_PIXEL, (7, 5, 8, 6)),
        (np.ones((9, 5), bool), (0, 0, 5, 9)),
        (rectangle((30, 30), 2, 4, 3, 5) | rectangle((30, 30), 20, 25, 10, 12), (3, 2, 12, 25)),
        (disc(), (31, 21, 90, 80)),
    ],
    ids=["rectangle", "single-pixel", "full", "two-blobs", "disc"],
)
def test_mask_bbox_is_exclusive_xyxy(mask, box):
    assert mask_bbox(mask) == box
    assert all(type(value) is int for value in mask_bbox(mask))


def test_mask_bbox_of_empty_mask_is_none():
    assert mask_bbox(np.zeros((5, 5), bool)) is None


@pytest.mark.parametrize("encoder", [encode_rle, encode_mask_png, mask_to_polygons, mask_bbox])
@pytest.mark.parametrize(
    "mask",
    [np.full((4, 4), 255, np.uint8), np.zeros((2, 4, 4), bool), np.zeros((0, 4), bool)],
    ids=["uint8", "3d", "0px"],
)
def test_encoders_reject_anything_but_a_2d_bool_mask(encoder, mask):
    with pytest.raises(ValueError):
        encoder(mask)


IMAGE = np.random.default_rng(5).integers(0, 256, (40, 60, 3), dtype=np.uint8)


def test_overlay_tints_inside_outlines_the_edge_and_leaves_the_rest_alone():
    first, second = rectangle(), rectangle(top=25, bottom=35, left=5, right=15)

    overlay = render_overlay(IMAGE, [first, second], alpha=0.5)

    assert overlay.shape == IMAGE.shape and overlay.dtype == np.uint8
    outside = ~(first | second)
    assert np.array_equal(overlay[outside], IMAGE[outside])
    interior = (15, 30)
    expected = np.rint(0.5 * IMAGE[interior].astype(float) + 0.5 * PALETTE[0]).astype(np.uint8)
    assert np.array_equal(overlay[interior], expected)
    assert np.array_equal(overlay[10, 20], PALETTE[0]) and np.array_equal(overlay[34, 14], PALETTE[1])


def test_overlay_with_zero_alpha_only_draws_outlines():
    overlay = render_overlay(IMAGE, [rectangle()], alpha=0.0)

    assert np.array_equal(overlay[15, 30], IMAGE[15, 30])
    assert np.array_equal(overlay[19, 39], PALETTE[0])


def test_overlay_validates_its_inputs():
    with pytest.raises(ValueError, match="alpha"):
        render_overlay(IMAGE, [rectangle()], alpha=1.5)
    with pytest.raises(ValueError, match="shape"):
        render_overlay(IMAGE, [rectangle((41, 60))])


def test_mask_only_is_the_union_as_255_on_black():
    first, second = rectangle(), disc((40, 60), (30, 10), 6)

    picture = render_mask_only([first, second], IMAGE.shape)

    assert picture.shape == (40, 60) and picture.dtype == np.uint8
    assert np.array_equal(picture == 255, first | second) and np.array_equal(picture == 0, ~(first | second))


def test_mask_only_without_masks_is_black():
    assert not render_mask_only([], (4, 6)).any()


def test_cutout_keeps_the_image_inside_and_is_transparent_outside():
    mask = disc((40, 60), (20, 30), 12)

    cutout = render_cutout(IMAGE, mask)

    assert cutout.shape == (40, 60, 4) and cutout.dtype == np.uint8
    assert np.array_equal(cutout[..., 3], mask.astype(np.uint8) * 255)
    assert np.array_equal(cutout[mask, :3], IMAGE[mask]) and not cutout[~mask].any()

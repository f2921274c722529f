"""Mask codecs and renderers: bool HxW masks out as COCO RLE, PNG, polygons, boxes and pictures.

Clients also send masks back (RLE or PNG) to refine an earlier result, so the decoders
treat their input as untrusted. RLE counts are parsed and checked here rather than
handed to pycocotools' C decoder, which does not validate them: with counts covering too
few pixels it returns uninitialised memory (seen with pycocotools 2.0.11).
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
from pycocotools import mask as coco_mask

from segserve.contract.errors import InvalidRequest, PayloadTooLarge
from segserve.media.images import DEFAULT_MAX_PIXELS, decode_image, encode_png

# matplotlib's tab10 without its grey, which disappears on photographs; RGB.
PALETTE = np.array(
    [
        (31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
        (140, 86, 75), (227, 119, 194), (188, 189, 34), (23, 190, 207),
    ],
    dtype=np.uint8,
)
# COCO counts are 32-bit, so no honest count needs more than seven 5-bit chunks;
# the cap also stops a long run of continuation characters from growing one huge integer.
_MAX_CHUNKS_PER_COUNT = 7
_NEIGHBOURHOOD = np.ones((3, 3), np.uint8)


def encode_rle(mask: np.ndarray) -> dict:
    """COCO compressed RLE, JSON-ready: `{"size": [h, w], "counts": "<ascii>"}`."""
    _check_mask(mask)
    # bool and uint8 share their bytes: a column-major mask (as SAM2's come) is encoded without a copy
    rle = coco_mask.encode(np.asfortranarray(mask.view(np.uint8)))
    return {"size": [int(rle["size"][0]), int(rle["size"][1])], "counts": rle["counts"].decode("ascii")}


def decode_rle(rle: object, *, max_pixels: int = DEFAULT_MAX_PIXELS, field: str = "mask") -> np.ndarray:
    """Decode a client's COCO RLE (compressed string or uncompressed list of counts) to a bool HxW mask.

    Errors name `field` (e.g. "mask.counts"); a size over `max_pixels` is refused before allocating.
    """
    if not isinstance(rle, dict):
        raise InvalidRequest(f"{field} must be a COCO RLE object with 'size' and 'counts'", field=field)
    size = rle.get("size")
    if not (isinstance(size, list | tuple) and len(size) == 2 and all(type(n) is int and n > 0 for n in size)):
        raise InvalidRequest(f"{field}.size must be [height, width], two positive integers", field=f"{field}.size")
    height, width = size
    if height * width > max_pixels:
        raise PayloadTooLarge(f"{field} is {width}x{height}; the limit is {max_pixels:,} pixels", field=f"{field}.size")
    counts = rle.get("counts")
    if isinstance(counts, str):
        runs = _parse_counts(counts, f"{field}.counts")
    elif isinstance(counts, list) and all(type(n) is int for n in counts):
        runs = counts
    else:
        raise InvalidRequest(f"{field}.counts must be a COCO RLE string or a list of integers", field=f"{field}.counts")
    if any(n < 0 for n in runs) or sum(runs) != height * width:
        raise InvalidRequest(
            f"{field}.counts must be non-negative runs covering exactly {height}x{width} = {height * width} pixels",
            field=f"{field}.counts",
        )
    # Runs alternate 0, 1, 0, ... down the columns (COCO's column-major order).
    flat = np.repeat(np.arange(len(runs)) % 2 == 1, runs)
    return np.ascontiguousarray(flat.reshape(width, height).T)


def encode_mask_png(mask: np.ndarray) -> bytes:
    """Single-channel PNG: 255 inside the mask, 0 outside."""
    _check_mask(mask)
    return encode_png(mask.astype(np.uint8) * 255)


def decode_mask_png(data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS, field: str = "mask") -> np.ndarray:
    """Bool mask from a mask picture: set wherever any channel is above 127.

    Any format `decode_image` reads is accepted, with the same size and corruption checks.
    """
    return (decode_image(data, max_pixels, field=field) > 127).any(axis=2)


def mask_to_polygons(mask: np.ndarray) -> list[list[float]]:
    """COCO polygons `[x0, y0, x1, y1, ...]` tracing the pixel edges of each connected region.

    Coordinates follow COCO: pixel (x, y) covers [x, x+1) x [y, y+1), so pycocotools rasterises
    the polygons of a hole-free mask back to exactly that mask. Holes are not represented
    (COCO unions an object's polygons, so a hole cannot be expressed; send RLE when they
    matter). Every region, even a single pixel, gives at least four corners, so nothing
    is degenerate. Regions touching only at a corner come out as one polygon.
    """
    _check_mask(mask)
    bbox = mask_bbox(mask)
    if bbox is None:
        return []
    left, top, right, bottom = bbox
    crop = mask[top:bottom, left:right]
    # Trace on a half-pixel lattice (even indices are pixel corners, odd ones pixel centres) so the
    # contour runs along pixel edges instead of through boundary-pixel centres, half a pixel inside.
    lattice = np.zeros((2 * crop.shape[0] + 1, 2 * crop.shape[1] + 1), np.uint8)
    lattice[1::2, 1::2] = crop
    lattice = cv2.dilate(lattice, _NEIGHBOURHOOD)
    contours, _ = cv2.findContours(lattice, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    return [(contour.reshape(-1, 2) / 2 + (left, top)).ravel().tolist() for contour in contours]


def mask_bbox(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """Box `(x0, y0, x1, y1)` on pixel edges (x1, y1 exclusive), or None for an empty mask."""
    _check_mask(mask)
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    columns = np.flatnonzero(mask.any(axis=0))
    return int(columns[0]), int(rows[0]), int(columns[-1]) + 1, int(rows[-1]) + 1


def render_overlay(image: np.ndarray, masks: Sequence[np.ndarray], alpha: float = 0.5) -> np.ndarray:
    """RGB picture with mask i tinted by PALETTE[i] (cycling) and outlined; other pixels untouched."""
    _check_rgb(image)
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    overlay = image.copy()
    for index, mask in enumerate(masks):
        _check_mask(mask, image.shape[:2])
        colour = PALETTE[index % len(PALETTE)]
        overlay[mask] = np.rint((1.0 - alpha) * overlay[mask] + alpha * colour).astype(np.uint8)
        overlay[_inner_edge(mask)] = colour
    return overlay


def render_mask_only(masks: Sequence[np.ndarray], shape: tuple[int, ...]) -> np.ndarray:
    """Greyscale uint8 picture: the union of the masks as 255 on 0. `shape` is (height, width) or an image's shape."""
    union = np.zeros(shape[:2], dtype=bool)
    for mask in masks:
        _check_mask(mask, union.shape)
        union |= mask
    return union.astype(np.uint8) * 255


def render_cutout(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """RGBA cut-out: the image inside the mask, fully transparent black outside (smaller PNGs)."""
    _check_rgb(image)
    _check_mask(mask, image.shape[:2])
    cutout = np.zeros((*mask.shape, 4), dtype=np.uint8)
    cutout[mask, :3] = image[mask]
    cutout[mask, 3] = 255
    return cutout


def _inner_edge(mask: np.ndarray) -> np.ndarray:
    """Mask pixels with a neighbour outside the mask: an outline that stays inside the mask."""
    return mask & ~cv2.erode(mask.astype(np.uint8), _NEIGHBOURHOOD).astype(bool)


def _parse_counts(text: str, field: str) -> list[int]:
    """Read COCO's compressed counts (the inverse of pycocotools' rleToString).

    Each count is little-endian 5-bit chunks, each stored as chr(48 + chunk) with 0x20 set when
    another chunk follows; 0x10 in the last chunk marks a negative value. From the fourth count
    on, the value stored is the difference from the count two places earlier.
    """
    runs: list[int] = []
    value = shift = 0
    for character in text:
        chunk = ord(character) - 48
        if not 0 <= chunk < 64:
            raise InvalidRequest(f"{field} has {character!r}, which is not a COCO RLE character", field=field)
        value |= (chunk & 0x1F) << shift
        shift += 5
        if chunk & 0x20:
            if shift >= 5 * _MAX_CHUNKS_PER_COUNT:
                raise InvalidRequest(f"{field} holds a count too large for COCO RLE", field=field)
            continue
        if chunk & 0x10:
            value -= 1 << shift
        if len(runs) > 2:
            value += runs[-2]
        runs.append(value)
        value = shift = 0
    if shift:
        raise InvalidRequest(f"{field} ends in the middle of a count (truncated?)", field=field)
    return runs


def _check_mask(mask: np.ndarray, shape: tuple[int, ...] | None = None) -> None:
    if not (isinstance(mask, np.ndarray) and mask.dtype == bool and mask.ndim == 2 and mask.size > 0):
        raise ValueError(f"a mask must be a non-empty 2-D bool array, got {getattr(mask, 'dtype', type(mask))}")
    if shape is not None and mask.shape != tuple(shape):
        raise ValueError(f"mask shape {mask.shape} does not match the image's {tuple(shape)}")


def _check_rgb(image: np.ndarray) -> None:
    if not (isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3):
        raise ValueError(f"expected an HxWx3 uint8 RGB image, got {getattr(image, 'dtype', type(image))}")

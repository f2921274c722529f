"""The parts of an answer made from pixels: masks in the requested format, and the seed API's rendered PNGs."""

from __future__ import annotations

import base64
from collections.abc import Sequence

import numpy as np

from segserve.contract.responses import EncodedMask, Mask, PngMask, PolygonsMask, RleMask
from segserve.media.images import encode_png
from segserve.media.masks import (
    encode_mask_png, encode_rle, mask_bbox, mask_to_polygons, render_mask_only, render_overlay,
)


def encode_mask(mask: np.ndarray, mask_format: str) -> EncodedMask:
    if mask_format == "rle":
        return RleMask(format="rle", **encode_rle(mask))
    if mask_format == "png":
        return PngMask(format="png", data=_b64(encode_mask_png(mask)))
    return PolygonsMask(format="polygons", polygons=mask_to_polygons(mask))


def mask_entry(mask: np.ndarray, score: float, mask_format: str, kind: type[Mask] = Mask, **extra) -> Mask:
    """One mask: the model's score, its tight box (xyxy pixel edges; null when empty), area and encoding;
    `kind` a Mask with more fields (`extra`), e.g. a detection's label."""
    box = mask_bbox(mask)
    return kind(
        score=round(float(score), 6),
        box=list(box) if box is not None else None,
        area=int(np.count_nonzero(mask)),
        mask=encode_mask(mask, mask_format),
        **extra,
    )


def renderings(image: np.ndarray, masks: Sequence[np.ndarray], names: Sequence[str]) -> dict[str, str]:
    """The seed API's base64 PNGs: the image, the masks tinted over it, and the masks alone."""
    renderers = {
        "original": lambda: image,
        "overlay": lambda: render_overlay(image, masks),
        "mask_only": lambda: render_mask_only(masks, image.shape[:2]),
    }
    return {name: _b64(encode_png(renderers[name]())) for name in names}


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")

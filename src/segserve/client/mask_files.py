"""Write an answer's masks to files: one PNG per mask (255 inside, 0 outside), whatever format they came in,
the rendered pictures (return_images) as they came, and the answer itself as JSON with the masks' file names.

Imported only by callers that write files: it needs the mask codecs (numpy, pycocotools), which a Lambda
forwarding JSON does not.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
from pycocotools import mask as coco_mask

from segserve.media.masks import decode_mask_png, decode_rle, encode_mask_png

RENDERINGS = ("original", "overlay", "mask_only")


def mask_array(mask: dict, height: int, width: int) -> np.ndarray:
    """A bool HxW mask from an answer's `mask` object (rle, png or polygons, rasterised as COCO does)."""
    kind = mask.get("format")
    if kind == "rle":
        return decode_rle({"size": mask["size"], "counts": mask["counts"]})
    if kind == "png":
        return decode_mask_png(base64.b64decode(mask["data"], validate=True))
    if kind == "polygons":
        if not mask["polygons"]:
            return np.zeros((height, width), bool)
        rles = coco_mask.frPyObjects(mask["polygons"], height, width)
        return coco_mask.decode(coco_mask.merge(rles)).astype(bool)
    raise ValueError(f"unknown mask format {kind!r}")


def write_masks(answer: dict, out_dir: Path, stem: str = "mask") -> list[Path]:
    """`<stem>-<i>.png` for each mask, `<stem>-<rendering>.png` for each rendering, `<stem>.json` last.

    Returns every file written. The JSON is the answer with each mask's encoding replaced by its file name.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    summary = {key: value for key, value in answer.items() if key not in RENDERINGS}
    summary["masks"] = []
    height, width = answer["image"]["height"], answer["image"]["width"]
    for index, entry in enumerate(answer.get("masks", [])):
        path = out_dir / f"{stem}-{index}.png"
        path.write_bytes(encode_mask_png(mask_array(entry["mask"], height, width)))
        written.append(path)
        summary["masks"].append({**{k: v for k, v in entry.items() if k != "mask"}, "file": path.name})
    for name in RENDERINGS:
        if name in answer:
            path = out_dir / f"{stem}-{name}.png"
            path.write_bytes(base64.b64decode(answer[name], validate=True))
            written.append(path)
    path = out_dir / f"{stem}.json"
    path.write_text(json.dumps(summary, indent=2) + "\n")
    written.append(path)
    return written

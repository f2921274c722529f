"""Request bodies for the endpoint's actions (docs/API.md §3), built from Python values.

The image may be given as bytes, a local file, an http(s):// or s3:// URL (fetched by the endpoint), or
an `image_id` from an earlier answer. Field names are the API's own; `None` values are left out so the
endpoint's defaults apply.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from urllib.parse import quote

ImageSource = bytes | str | Path
_URL_SCHEMES = ("http://", "https://", "s3://")


def image_fields(image: ImageSource | None = None, image_id: str | None = None) -> dict:
    """`{"image": base64}`, `{"image_url": url}` or `{"image_id": id}`: exactly one source."""
    if (image is None) == (image_id is None):
        raise ValueError("give exactly one of image (bytes, a file or a URL) and image_id")
    if image_id is not None:
        return {"image_id": image_id}
    if isinstance(image, str) and image.lower().startswith(_URL_SCHEMES):
        return {"image_url": image}
    return {"image": base64.b64encode(read_image(image)).decode("ascii")}


def read_image(image: ImageSource) -> bytes:
    if isinstance(image, bytes):
        return image
    path = Path(image)
    if not path.is_file():
        raise ValueError(f"{image}: no such image file (a URL must start with http://, https:// or s3://)")
    return path.read_bytes()


def langsam_request(text_prompt: str, image: ImageSource | None = None, image_id: str | None = None,
                    **options) -> dict:
    """options: box_threshold, text_threshold, max_detections, mask_format, return_images, refine_prompt."""
    return _without_none({"action": "langsam", "text_prompt": text_prompt, **image_fields(image, image_id), **options})


def sam2_request(image: ImageSource | None = None, image_id: str | None = None, *, x: float | None = None,
                 y: float | None = None, points: list | None = None, labels: list | None = None,
                 box: list | None = None, **options) -> dict:
    """One positive point (x, y), points with labels (1 positive, 0 negative) and/or a box [x0, y0, x1, y1];
    options: multimask, mask_input, mask_format, return_images."""
    return _without_none({"action": "sam2", **image_fields(image, image_id), "x": x, "y": y, "points": points,
                          "labels": labels, "box": box, **options})


def sam3_request(image: ImageSource | None = None, image_id: str | None = None, *, text_prompt: str | None = None,
                 exemplar_boxes: list | None = None, exemplar_labels: list | None = None, x: float | None = None,
                 y: float | None = None, points: list | None = None, labels: list | None = None,
                 box: list | None = None, **options) -> dict:
    """SAM 3. Concept mode: text_prompt ("bus. car") and/or exemplar_boxes (labels 1 like this, 0 not this) →
    every instance; options score_threshold, mask_threshold, max_detections. Click mode: sam2's x/y, points,
    labels, box (options multimask, mask_input). Both: mask_format, return_images."""
    return _without_none({
        "action": "sam3", **image_fields(image, image_id), "text_prompt": text_prompt,
        "exemplar_boxes": exemplar_boxes, "exemplar_labels": exemplar_labels, "x": x, "y": y, "points": points,
        "labels": labels, "box": box, **options,
    })


def ping_request() -> dict:
    return {"action": "ping"}


def custom_attributes(fields: dict) -> str:
    """SageMaker's `X-Amzn-SageMaker-Custom-Attributes` for a raw image body: 'action=sam2;x=10;box=[1,2,3,4]'.

    Values are percent-encoded (the header allows visible ASCII only, and ';' separates fields);
    lists and objects go as compact JSON, booleans as true/false. SageMaker caps the header at 1024 chars.
    """
    def text(value) -> str:
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, (list, dict)):
            return json.dumps(value, separators=(",", ":"))
        return str(value)

    header = ";".join(f"{key}={quote(text(value), safe='[],:{}')}" for key, value in _without_none(fields).items())
    if len(header) > 1024:
        raise ValueError(f"custom attributes are {len(header)} characters; SageMaker allows 1024: send JSON instead")
    return header


def _without_none(fields: dict) -> dict:
    return {key: value for key, value in fields.items() if value is not None}

"""The client's request building and mask files, against the server's own parsers and encoders."""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest

from segserve.contract.wire import parse_custom_attributes
from segserve.inference.answers import mask_entry
from segserve.contract.requests import parse_request
from segserve.client import custom_attributes, langsam_request, sam2_request, sam3_request
from segserve.client.mask_files import write_masks
from segserve.media.masks import decode_mask_png


def test_custom_attributes_round_trip_through_the_servers_parser():
    fields = {"action": "langsam", "text_prompt": "black jeans; white shirt=yes", "box": [1, 2.5, 30, 40],
              "multimask": False, "max_detections": 3, "image_id": None}
    header = custom_attributes(fields)
    assert header.isascii() and " " not in header
    parsed = parse_custom_attributes(header)
    assert parsed == {"action": "langsam", "text_prompt": "black jeans; white shirt=yes", "box": [1, 2.5, 30, 40],
                      "multimask": "false", "max_detections": "3"}  # strings, as the lax schema validation expects


def test_custom_attributes_over_sagemakers_limit_are_refused():
    with pytest.raises(ValueError, match="1024"):
        custom_attributes({"action": "sam2", "text_prompt": "x" * 1100})


def test_built_requests_pass_the_servers_schema(tmp_path):
    image = tmp_path / "a.png"
    image.write_bytes(b"\x89PNG")
    sam2 = sam2_request(image, points=[[1, 2], [3, 4]], labels=[1, 0], box=[0, 0, 5, 5], multimask=False)
    assert parse_request(json.loads(json.dumps(sam2))).labels == [1, 0]
    assert base64.b64decode(sam2["image"]) == b"\x89PNG"
    langsam = langsam_request("cat", "s3://bucket/cat.jpg", max_detections=2)
    assert parse_request(langsam).image_url == "s3://bucket/cat.jpg"
    assert parse_request(sam2_request(image_id="abc", x=1, y=2)).image_id == "abc"
    sam3 = parse_request(sam3_request(image, text_prompt="bus. car", exemplar_boxes=[[0, 0, 5, 5]],
                                      exemplar_labels=[0], max_detections=3))
    assert sam3.phrases == ["bus", "car"] and sam3.exemplars == ([[0, 0, 5, 5]], [0]) and sam3.max_detections == 3
    assert parse_request(sam3_request(image_id="abc", x=1, y=2)).has_click


@pytest.mark.parametrize("image, image_id", [(None, None), (b"x", "abc")])
def test_exactly_one_image_source(image, image_id):
    with pytest.raises(ValueError, match="exactly one"):
        sam2_request(image, image_id, x=1, y=1)


@pytest.mark.parametrize("mask_format", ["rle", "png", "polygons"])
def test_masks_are_written_as_the_same_png_whatever_format_they_came_in(tmp_path, mask_format):
    mask = np.zeros((30, 40), bool)
    mask[5:20, 8:30] = True  # hole-free: polygons describe it exactly too
    answer = {"action": "sam2", "image": {"id": "i", "width": 40, "height": 30},
              "masks": [mask_entry(mask, 0.9, mask_format).model_dump(),
                        mask_entry(np.zeros((30, 40), bool), 0.1, mask_format).model_dump()],
              "overlay": base64.b64encode(b"\x89PNG overlay").decode()}
    files = write_masks(answer, tmp_path / mask_format, stem="m")
    assert [f.name for f in files] == ["m-0.png", "m-1.png", "m-overlay.png", "m.json"]
    assert np.array_equal(decode_mask_png(files[0].read_bytes()), mask)
    assert not decode_mask_png(files[1].read_bytes()).any()
    assert files[2].read_bytes() == b"\x89PNG overlay"
    summary = json.loads(files[3].read_text())
    assert summary["masks"][0] == {"score": 0.9, "box": [8, 5, 30, 20], "area": 330, "file": "m-0.png"}
    assert "overlay" not in summary

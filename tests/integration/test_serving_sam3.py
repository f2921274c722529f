"""SAM 3 on the live endpoint: concept answers, a second phrase and clicks on one encoding, every way in.

The package server's weights (tiny) have SAM 3, so the entrypoint registered sam3 beside langsam and sam2.
"""

from __future__ import annotations

import json

import pytest

from tests.integration.serving import b64, check_segmentation, encode, ok_json

pytestmark = pytest.mark.integration

TEXT = {"text_prompt": "dog", "score_threshold": 0.02, "max_detections": 3}


@pytest.fixture(scope="module")
def image(scene_png) -> str:
    return b64(scene_png)


def test_ping_covers_sam3(server):
    body = ok_json(server.invoke({"action": "ping"}))
    assert body["models"]["sam3"]["ready_workers"] == 1


def test_a_second_phrase_and_clicks_by_image_id_run_no_vision_encoder(server, small_scene):
    # Its own picture: a cached encoding from another test would be no miss.
    picture = small_scene.copy()
    picture[:8, :8] = 7
    first = ok_json(server.invoke({"action": "sam3", "image": b64(encode(picture, "PNG")), **TEXT}))
    masks = check_segmentation(first, "sam3")
    assert first["cache"] == "miss" and first["mode"] == "concept" and len(masks) == 3
    assert "sam3_vision_encoder" in first["timings_ms"] and all(m["label"] == "dog" for m in masks)

    image_id = first["image"]["id"]
    second = ok_json(server.invoke({"action": "sam3", "image_id": image_id, "text_prompt": "red car. tree",
                                    "score_threshold": 0.02}))
    assert second["cache"] == "hit" and "sam3_vision_encoder" not in second["timings_ms"]
    assert {m["label"] for m in check_segmentation(second, "sam3")} == {"red car", "tree"}

    for _ in range(2):
        click = ok_json(server.invoke({"action": "sam3", "image_id": image_id, "x": 80, "y": 85}))
        assert click["mode"] == "click" and click["cache"] == "hit", click
        assert "sam3_vision_encoder" not in click["timings_ms"] and "sam3_tracker" in click["timings_ms"]
        assert len(check_segmentation(click, "sam3")) == 3


def test_exemplar_boxes_and_bad_requests(server, image):
    body = ok_json(server.invoke({"action": "sam3", "image": image, "exemplar_boxes": [[40, 40, 120, 130]],
                                  "exemplar_labels": [1], "score_threshold": 0.02, "max_detections": 2}))
    assert [m["label"] for m in check_segmentation(body, "sam3")] == [None, None]
    for payload, words in [
        ({"action": "sam3", "image": image}, "needs a prompt"),
        ({"action": "sam3", "image": image, "text_prompt": "dog", "x": 1, "y": 2}, "separate requests"),
        ({"action": "sam3", "image": image, "exemplar_boxes": [[10, 10, 5000, 20]]}, "outside"),
    ]:
        reply = server.invoke(payload)
        assert reply.status_code == 400 and words in reply.json()["error"]["message"], reply.text
    reply = server.invoke({"action": "sam3", "image_id": "f" * 32, "text_prompt": "dog"})
    assert reply.status_code == 404 and "not cached" in reply.json()["error"]["message"]


def test_sam3_in_a_batch_and_as_a_raw_image(server, image, scene_png):
    lines = [json.dumps({"action": "sam3", "image": image, **TEXT}),
             json.dumps({"action": "sam3", "image": image}),  # no prompt: an error line, the batch goes on
             json.dumps({"action": "sam2", "image": image, "x": 80, "y": 85})]
    reply = server.invoke(data=("\n".join(lines) + "\n").encode(), content_type="application/jsonlines")
    assert reply.status_code == 200
    answers = [json.loads(line) for line in reply.text.splitlines()]
    assert answers[0]["action"] == "sam3" and len(answers[0]["masks"]) == 3
    assert answers[1]["error"]["status"] == 400 and answers[2]["action"] == "sam2"

    raw = server.invoke(data=scene_png, content_type="image/png", headers={
        "X-Amzn-SageMaker-Custom-Attributes": "action=sam3;text_prompt=dog;score_threshold=0.02;max_detections=2"})
    assert len(check_segmentation(ok_json(raw), "sam3")) == 2

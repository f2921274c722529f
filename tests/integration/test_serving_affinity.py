"""Two sam2 replicas on one instance (SEGSERVE_WORKERS_SAM2=2), and SageMaker sessions, on a live endpoint.

A second, small server from the same model store: each image's requests must reach the one replica that
holds its embedding, whether they carry the image or its id, come from a client or from langsam, and
whether or not they belong to a session. Its store has no sam3 (as with weights without SAM 3): it must say
so to a sam3 request and serve the rest.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

from segserve.media.image_loading import image_id_of
from segserve.routing.affinity import home_model
from tests.conftest import make_scene
from tests.integration.conftest import ROUTER_WORKERS, serve
from tests.integration.serving import b64, check_segmentation, encode, ok_json

pytestmark = pytest.mark.integration

REPLICAS = ("sam2-0", "sam2-1")
NEW_SESSION = r"^[a-zA-Z0-9](-*[a-zA-Z0-9])*;\sExpires=[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z$"


@pytest.fixture(scope="module")
def replicas(tmp_path_factory, model_store, plugin_dir, s3):
    without_sam3 = tmp_path_factory.mktemp("store-without-sam3")
    for model in ("router", "langsam", "sam2"):
        (without_sam3 / model).symlink_to(model_store / model)
    with serve(tmp_path_factory, without_sam3, plugin_dir, s3, SEGSERVE_WORKERS_SAM2="2") as serving:
        yield serving


def test_without_sam3_a_sam3_request_says_it_is_not_deployed_and_the_rest_serves(replicas):
    picture = b64(encode(make_scene(240, 320, seed=99), "PNG"))  # not one of `pictures`: their first use is a miss
    reply = replicas.invoke({"action": "sam3", "image": picture, "text_prompt": "dog"})
    error = reply.json()["error"]
    assert reply.status_code == 400 and error["code"] == "not_deployed", reply.text
    assert "does not deploy sam3" in error["message"]
    ping = ok_json(replicas.invoke({"action": "ping"}))
    assert "sam3" not in ping["models"] and replicas.ping().status == 200
    assert ok_json(replicas.invoke({"action": "langsam", "image": picture, "text_prompt": "dog"}))["action"] == "langsam"
    assert "not deployed" in (replicas.run_dir / "entrypoint.out").read_text()


@pytest.fixture(scope="module")
def pictures() -> dict[str, tuple[str, str]]:
    """One picture at home on each replica: replica → (image id, base64 PNG)."""
    found = {}
    for seed in range(20, 60):
        pixels = make_scene(240, 320, seed=seed)
        image_id = image_id_of(np.array(pixels))
        found.setdefault(home_model(image_id, REPLICAS), (image_id, b64(encode(pixels, "PNG"))))
        if len(found) == len(REPLICAS):
            return found
    raise AssertionError("40 pictures all hashed to one replica")


def test_ping_and_readiness_know_both_replicas(replicas):
    assert replicas.startup_pings[-1].body["models"] == {
        "router": {"registered": True, "workers": ROUTER_WORKERS, "ready_workers": ROUTER_WORKERS},
        "langsam": {"registered": True, "workers": 1, "ready_workers": 1},
        "sam2-0": {"registered": True, "workers": 1, "ready_workers": 1},
        "sam2-1": {"registered": True, "workers": 1, "ready_workers": 1},
    }
    assert set(ok_json(replicas.invoke({"action": "ping"}))["models"]) == {"router", "langsam", *REPLICAS}


def test_ten_clicks_after_the_first_are_all_hits_on_the_images_home(replicas, pictures):
    image_id, image = pictures["sam2-1"]
    first = ok_json(replicas.invoke({"action": "sam2", "image": image, "x": 80, "y": 85}))
    assert first["image"]["id"] == image_id and first["cache"] == "miss"
    assert first["model"]["name"] == "sam2-1"  # answers name the replica that served them
    clicks = []
    for n in range(10):
        point = {"x": 20 + 25 * n, "y": 30 + 15 * n}
        # alternately by id and with the image again: both must find the one replica that encoded it
        source = {"image_id": image_id} if n % 2 == 0 else {"image": image}
        clicks.append(ok_json(replicas.invoke({"action": "sam2", **source, **point, "multimask": False})))
    assert [click["cache"] for click in clicks] == ["hit"] * 10
    assert {click["model"]["name"] for click in clicks} == {"sam2-1"}
    assert not any("sam2_image_encoder" in click["timings_ms"] for click in clicks)


def test_langsam_decodes_on_the_images_home_replica(replicas, pictures):
    image_id, image = pictures["sam2-0"]
    text = ok_json(replicas.invoke({"action": "langsam", "image": image, "text_prompt": "blue disc",
                                    "box_threshold": 0.0, "text_threshold": 0.0, "max_detections": 1}))
    check_segmentation(text, "langsam")
    assert text["image"]["id"] == image_id and text["cache"] == "miss"
    click = ok_json(replicas.invoke({"action": "sam2", "image_id": image_id, "x": 220, "y": 150}))
    assert click["cache"] == "hit" and "sam2_image_encoder" not in click["timings_ms"]


def test_a_session_opens_with_the_new_session_header_and_its_clicks_meet_their_embedding(replicas, pictures):
    image_id, image = pictures["sam2-0"]
    opened = replicas.invoke({"requestType": "NEW_SESSION"}, headers={"X-Amzn-SageMaker-Session-Id": "NEW_SESSION"})
    value = opened.headers["X-Amzn-SageMaker-New-Session-Id"]  # set by the router, passed on by TorchServe
    assert re.fullmatch(NEW_SESSION, value), value
    session_id = ok_json(opened)["session"]["id"]
    assert value.startswith(session_id + "; Expires=")

    in_session = {"X-Amzn-SageMaker-Session-Id": session_id}
    first = replicas.invoke({"action": "sam2", "image": image, "box": [150, 100, 300, 220]}, headers=in_session)
    assert ok_json(first)["model"]["name"] == "sam2-0"
    assert "X-Amzn-SageMaker-New-Session-Id" not in first.headers  # only the opening answer names a session
    clicks = [ok_json(replicas.invoke({"action": "sam2", "image_id": image_id, "x": 100 + 10 * n, "y": 100},
                                      headers=in_session)) for n in range(3)]
    assert [(click["cache"], click["model"]["name"]) for click in clicks] == [("hit", "sam2-0")] * 3

    closed = replicas.invoke({"requestType": "CLOSE"}, headers=in_session)
    assert ok_json(closed) == {"session": {"id": session_id, "closed": True}}
    assert closed.headers["X-Amzn-SageMaker-Closed-Session-Id"] == session_id


def test_an_ordinary_request_with_new_session_is_answered_and_opens_one(replicas, pictures):
    _, image = pictures["sam2-0"]
    reply = replicas.invoke({"action": "sam2", "image": image, "x": 10, "y": 10},
                            headers={"X-Amzn-SageMaker-Session-Id": "NEW_SESSION"})
    assert ok_json(reply)["model"]["name"] == "sam2-0"
    assert re.fullmatch(NEW_SESSION, reply.headers["X-Amzn-SageMaker-New-Session-Id"])

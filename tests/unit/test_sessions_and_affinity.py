"""SageMaker stateful sessions and image affinity in the router, without TorchServe."""

from __future__ import annotations

import base64
import json
import re
from datetime import datetime, timezone

import pytest

from segserve.media.image_loading import ImageLoader, image_id_of
from segserve.media.images import decode_image
from segserve.routing.affinity import ImageHomes, home_model, sam2_models
from segserve.routing.router import Router
from segserve.contract.sessions import Session, session_request
from tests.unit.test_invocation import png_bytes
from tests.unit.test_routing import READY, FakeModels, call

# botocore's sagemaker-runtime shapes, verbatim: NewSessionResponseHeader and SessionIdHeader.
NEW_SESSION_PATTERN = r"^[a-zA-Z0-9](-*[a-zA-Z0-9])*;\sExpires=[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z$"
SESSION_ID_PATTERN = r"^[a-zA-Z0-9](-*[a-zA-Z0-9])*$"
REPLICAS = ("sam2-0", "sam2-1", "sam2-2")


def replica_router(models: FakeModels) -> Router:
    return Router(models.forward, models.descriptions.get, {"langsam": "langsam", "sam2": "sam2"},
                  homes=[ImageHomes("sam2", REPLICAS, ImageLoader())], session_ttl_s=600)


def test_the_new_session_header_has_botocores_exact_format():
    session = Session.new(1200, now=datetime(2026, 12, 1, 22, 0, 5, 123456, tzinfo=timezone.utc))
    assert re.fullmatch(NEW_SESSION_PATTERN, session.header) and len(session.header) <= 256
    assert session.header == f"{session.id}; Expires=2026-12-01T22:20:05Z"
    assert re.fullmatch(SESSION_ID_PATTERN, session.id)
    assert Session.new(60).id != Session.new(60).id


@pytest.mark.parametrize("headers", [{"X-Amzn-SageMaker-Session-Id": "NEW_SESSION"},
                                     {"x-amzn-sagemaker-session-id": "NEW_SESSION"}, {}])
def test_a_session_opens_by_header_or_body_and_the_router_answers_it(headers):
    models = FakeModels()
    reply = replica_router(models)(b'{"requestType": "NEW_SESSION"}', "application/json", headers, "rid")
    assert reply.status == 200 and models.calls == []
    value = reply.headers["X-Amzn-SageMaker-New-Session-Id"]
    assert re.fullmatch(NEW_SESSION_PATTERN, value)
    body = json.loads(reply.body)["session"]
    assert value == f"{body['id']}; Expires={body['expires']}"
    assert datetime.strptime(body["expires"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc) > datetime.now(
        timezone.utc)


def test_new_session_on_an_ordinary_request_answers_it_and_opens_the_session():
    models = FakeModels()
    router = replica_router(models)
    reply = router(b'{"action": "sam2", "image_id": "abc", "x": 1, "y": 1}', "application/json",
                   {"X-Amzn-SageMaker-Session-Id": "NEW_SESSION"}, "rid")
    assert reply.status == 200 and json.loads(reply.body) == {"action": home_model("abc", REPLICAS)}  # fake: echoes
    assert re.fullmatch(NEW_SESSION_PATTERN, reply.headers["X-Amzn-SageMaker-New-Session-Id"])
    assert models.calls[0][2] == {"Content-Type": "application/json"}  # the session header is the router's


def test_a_failed_request_opens_no_session():
    reply = replica_router(FakeModels())(b'{"action": "segment"}', "application/json",
                                         {"X-Amzn-SageMaker-Session-Id": "NEW_SESSION"}, "rid")
    assert reply.status == 400 and "X-Amzn-SageMaker-New-Session-Id" not in reply.headers


@pytest.mark.parametrize("headers, body", [
    ({"X-Amzn-SageMaker-Session-Id": "abc-123"}, {"requestType": "CLOSE"}),
    ({}, {"requestType": "CLOSE", "sessionId": "abc-123"}),
    ({"X-Amzn-SageMaker-Session-Id": "abc-123"}, {"requestType": "CLOSE", "sessionId": "abc-123"}),
])
def test_a_close_is_answered_with_the_closed_session_header(headers, body):
    reply = replica_router(FakeModels())(json.dumps(body).encode(), "application/json", headers, "rid")
    assert reply.status == 200 and reply.headers == {"X-Amzn-SageMaker-Closed-Session-Id": "abc-123"}
    assert json.loads(reply.body) == {"session": {"id": "abc-123", "closed": True}}


@pytest.mark.parametrize("headers, body, field", [
    ({"X-Amzn-SageMaker-Session-Id": "bad_id!"}, {"action": "ping"}, "X-Amzn-SageMaker-Session-Id"),
    ({"X-Amzn-SageMaker-Session-Id": "-leading"}, {"action": "ping"}, "X-Amzn-SageMaker-Session-Id"),
    ({"X-Amzn-SageMaker-Session-Id": "a" * 257}, {"action": "ping"}, "X-Amzn-SageMaker-Session-Id"),
    ({}, {"requestType": "CLOSE"}, "sessionId"),
    ({"X-Amzn-SageMaker-Session-Id": "one"}, {"requestType": "CLOSE", "sessionId": "two"}, "sessionId"),
    ({}, {"requestType": "OPEN"}, "requestType"),
    ({}, {"requestType": "NEW_SESSION", "action": "sam2"}, "requestType"),
])
def test_malformed_session_requests_are_400(headers, body, field):
    reply = replica_router(FakeModels())(json.dumps(body).encode(), "application/json", headers, "rid")
    error = json.loads(reply.body)["error"]
    assert reply.status == 400 and error["field"] == field and error["code"] == "invalid_request"
    assert not reply.headers


def test_an_existing_session_id_is_served_as_any_request():
    assert session_request({"X-Amzn-SageMaker-Session-Id": "a--b-9"}, {"action": "ping"}).session_id == "a--b-9"
    status, _, _ = call(FakeModels().router(), b'{"action": "ping"}', headers={"X-Amzn-SageMaker-Session-Id": "x1"})
    assert status == 200


# --- affinity ------------------------------------------------------------------------------------------------


def test_an_image_id_has_one_home_among_the_replicas_and_ids_spread_over_them():
    ids = [f"{n:032x}" for n in range(300)]
    homes = [home_model(image_id, REPLICAS) for image_id in ids]
    assert homes == [home_model(image_id, REPLICAS) for image_id in ids]  # stable (not Python's salted hash)
    assert all(homes.count(name) > 60 for name in REPLICAS)
    assert home_model("anything", ("sam2",)) == "sam2"


def test_sam2_models_come_from_the_entrypoints_list():
    assert sam2_models(None) == ("sam2",) and sam2_models("") == ("sam2",)
    assert sam2_models("sam2-0, sam2-1,") == ("sam2-0", "sam2-1")


def test_requests_about_one_image_all_go_to_its_home_replica(scene):
    png = png_bytes(scene)
    image_id = image_id_of(decode_image(png))
    home = home_model(image_id, REPLICAS)
    models = FakeModels(descriptions={name: READY for name in ("router", "langsam", *REPLICAS)})
    router = replica_router(models)
    image = base64.b64encode(png).decode()
    bodies = [
        json.dumps({"action": "sam2", "image_id": image_id, "x": 1, "y": 1}).encode(),
        json.dumps({"action": "sam2", "image": image, "x": 1, "y": 1}).encode(),
        json.dumps({"action": "sam2", "image": "data:image/png;base64," + image, "box": [1, 1, 9, 9]}).encode(),
    ]
    for body in bodies:
        assert call(router, body)[0] == 200
    assert call(router, png, "image/png", {"X-Amzn-SageMaker-Custom-Attributes": "action=sam2;x=1;y=1"})[0] == 200
    lines = b"\n".join(bodies[:2])
    assert call(router, lines, "application/jsonlines")[0] == 200
    assert [model for model, _, _ in models.calls] == [home] * 6
    assert call(router, b'{"action": "langsam", "image_id": "x", "text_prompt": "a"}')[0] == 200
    assert models.calls[-1][0] == "langsam"  # langsam finds the sam2 home itself


def test_the_router_refuses_what_the_model_would_when_it_reads_the_image():
    models = FakeModels()
    status, body, _ = call(replica_router(models), b'{"action": "sam2", "image": "%%%", "x": 1, "y": 1}')
    assert status == 400 and json.loads(body)["error"]["code"] == "invalid_image" and models.calls == []


def test_ping_lists_every_replica():
    models = FakeModels(descriptions={name: READY for name in ("router", "langsam", *REPLICAS)})
    status, body, _ = call(replica_router(models), b'{"action": "ping"}')
    assert status == 200 and list(json.loads(body)["models"]) == ["router", "langsam", *REPLICAS]
    models.descriptions.pop("sam2-2")
    assert call(replica_router(models), b'{"action": "ping"}')[0] == 503

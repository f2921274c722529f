"""The UI's Lambda serving the page itself (GET / and GET /{proxy+} of deploy/template.yaml), called in-process
with API Gateway's events: the repo's web/ files, and what must never be served."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from deploy import lambda_function
from segserve.client.errors import EndpointError

REPO = Path(__file__).resolve().parents[2]
WEB = REPO / "web"
CONTEXT = SimpleNamespace(aws_request_id="lambda-req-1")
PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGP4z8DwHwAFAAH/iZk9HQAAAABJRU5ErkJggg==")


def get(path: str, *, proxy: bool = True, headers: dict | None = None, method: str = "GET") -> dict:
    """An HTTP API (payload 2.0) event for `path`, as the route `GET /` (no proxy) or `GET /{proxy+}` sends it."""
    event = {"version": "2.0", "routeKey": f"{method} /{{proxy+}}" if proxy else f"{method} /", "rawPath": path,
             "headers": headers or {}, "requestContext": {"http": {"method": method, "path": path}},
             "isBase64Encoded": False}
    if proxy and path != "/":
        event["pathParameters"] = {"proxy": path.lstrip("/")}
    return lambda_function.lambda_handler(event, CONTEXT)


@pytest.fixture(autouse=True)
def settings(monkeypatch):
    monkeypatch.setenv("ENDPOINT_NAME", "segserve")
    monkeypatch.setenv("UI_DIR", str(WEB))
    monkeypatch.delenv("ALLOWED_ORIGINS", raising=False)


def is_not_found(reply: dict) -> bool:
    return reply["statusCode"] == 404 and json.loads(reply["body"])["error"]["code"] == "not_found"


def test_the_root_is_the_page_with_its_security_headers():
    reply = get("/", proxy=False)
    assert reply["statusCode"] == 200 and reply["isBase64Encoded"] is False
    assert reply["body"] == (WEB / "index.html").read_text()
    headers = reply["headers"]
    assert headers["Content-Type"] == "text/html; charset=utf-8"
    assert "script-src 'self'" in headers["Content-Security-Policy"]
    assert headers["X-Content-Type-Options"] == "nosniff" and headers["Cache-Control"] == "no-cache"
    assert headers["ETag"].startswith('"') and "Access-Control-Allow-Origin" not in headers  # same origin: no CORS


@pytest.mark.parametrize(("name", "content_type"), [
    ("js/main.js", "text/javascript; charset=utf-8"), ("app.css", "text/css; charset=utf-8"),
    ("favicon.svg", "image/svg+xml"), ("index.html", "text/html; charset=utf-8")])
def test_every_file_the_page_loads_is_answered_with_its_type(name, content_type):
    for proxy in (True, False):  # from pathParameters.proxy, or from rawPath alone (REST API, direct calls)
        reply = get(f"/{name}", proxy=proxy)
        assert reply["statusCode"] == 200, (name, proxy, reply)
        assert reply["headers"]["Content-Type"] == content_type
        assert reply["body"] == (WEB / name).read_text()


def test_a_binary_file_is_base64_for_api_gateway(tmp_path, monkeypatch):
    (tmp_path / "logo.png").write_bytes(PNG)
    monkeypatch.setenv("UI_DIR", str(tmp_path))
    reply = get("/logo.png")
    assert reply["statusCode"] == 200 and reply["isBase64Encoded"] is True
    assert base64.b64decode(reply["body"]) == PNG and reply["headers"]["Content-Type"] == "image/png"


def test_an_unchanged_file_is_a_304_and_a_changed_one_is_sent_again(tmp_path, monkeypatch):
    (tmp_path / "index.html").write_text("<p>one</p>")
    monkeypatch.setenv("UI_DIR", str(tmp_path))
    etag = get("/", proxy=False)["headers"]["ETag"]
    again = get("/", proxy=False, headers={"if-none-match": f'"other", {etag}'})
    assert again["statusCode"] == 304 and again["body"] == "" and again["headers"]["ETag"] == etag
    (tmp_path / "index.html").write_text("<p>two</p>")
    changed = get("/", proxy=False, headers={"if-none-match": etag})
    assert changed["statusCode"] == 200 and changed["body"] == "<p>two</p>"


def test_nothing_outside_the_folder_or_of_an_unknown_type_is_served(tmp_path, monkeypatch):
    root = tmp_path / "web"
    (root / "js").mkdir(parents=True)
    (root / "index.html").write_text("page")
    (root / ".hidden.html").write_text("dot file")
    (root / "README.md").write_text("not a page file")
    (root / "package.json").write_text("{}")
    (tmp_path / "secret.html").write_text("outside")
    (root / "link.html").symlink_to(tmp_path / "secret.html")
    monkeypatch.setenv("UI_DIR", str(root))
    assert get("/index.html")["statusCode"] == 200  # the folder is served at all
    for name in ["/../secret.html", "/js/../../secret.html", "/%2e%2e/secret.html", "/link.html", "/.hidden.html",
                 "/README.md", "/package.json", "/js/", "/js", "/missing.js", "//etc/passwd.html",
                 "/js\\..\\..\\secret.html", "/index.html\x00.png", "/../web/index.html"]:
        for proxy in (True, False):
            reply = get(name, proxy=proxy)
            assert is_not_found(reply), (name, proxy, reply)
            assert "outside" not in reply["body"]


def test_an_encoded_traversal_in_raw_path_is_decoded_before_it_is_checked(tmp_path, monkeypatch):
    root = tmp_path / "web"
    root.mkdir()
    (tmp_path / "secret.html").write_text("outside")
    monkeypatch.setenv("UI_DIR", str(root))
    assert is_not_found(get("/%2E%2E%2Fsecret.html", proxy=False))


def test_without_ui_dir_the_files_come_from_web_beside_the_handler(tmp_path, monkeypatch):
    (tmp_path / "web").mkdir()
    (tmp_path / "web" / "index.html").write_text("packaged page")
    monkeypatch.delenv("UI_DIR")
    monkeypatch.setattr(lambda_function, "__file__", str(tmp_path / "lambda_function.py"))
    assert get("/", proxy=False)["body"] == "packaged page"


def test_a_backend_packaged_without_the_page_answers_404_and_says_why_in_its_log(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("UI_DIR", str(tmp_path / "absent"))
    assert is_not_found(get("/", proxy=False))
    assert "not packaged" in caplog.text


def test_only_get_reaches_the_files_and_get_on_invocations_stays_405():
    for reply in (get("/", proxy=False, method="POST"), get("/index.html", method="DELETE"), get("/invocations")):
        assert reply["statusCode"] == 405, reply
        assert json.loads(reply["body"])["error"]["code"] == "method_not_allowed"


# --- SageMaker refusing a session the page still holds


@pytest.mark.parametrize(("error", "session_id", "refused"), [
    (EndpointError(400, "ValidationError", "Session abc is not found.", from_model=False), "abc", True),
    (EndpointError(400, "ValidationError", "Session abc is not found.", from_model=False), "NEW_SESSION", False),
    (EndpointError(400, "ValidationError", "Session abc is not found.", from_model=False), None, False),
    (EndpointError(400, "ValidationError", "Endpoint x of account 1 not found.", from_model=False), "abc", False),
    (EndpointError(400, "invalid_request", "bad session id", from_model=True), "abc", False),
    (EndpointError(429, "ThrottlingException", "session rate", from_model=False), "abc", False),
])
def test_a_session_refusal_is_told_apart_from_other_refusals(error, session_id, refused):
    assert lambda_function.session_refused(error, session_id) is refused


def test_a_refused_session_reaches_the_page_as_400_session_expired(monkeypatch):
    class Refusing:
        def invoke(self, data, session_id=None):
            raise EndpointError(400, "ValidationError", f"Session id {session_id} of account 1 is closed.",
                                from_model=False)

    monkeypatch.setitem(lambda_function._clients, lambda_function.Settings.from_env(), Refusing())
    event = {"version": "2.0", "rawPath": "/invocations", "body": '{"action": "sam2"}', "isBase64Encoded": False,
             "headers": {"x-amzn-sagemaker-session-id": "abc"}, "requestContext": {"http": {"method": "POST"}}}
    reply = lambda_function.lambda_handler(event, CONTEXT)
    assert reply["statusCode"] == 400
    body = json.loads(reply["body"])
    assert body["error"]["code"] == "session_expired" and "account" not in reply["body"]

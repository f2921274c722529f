"""The UI's files on the inference port (serving/plugins UiEndpoint) and the entrypoint's ready line, on the shared
live server, which serves web/ as `make serve` does. The UI switched off (no SEGSERVE_UI_DIR, as in the container)
is checked in test_ping_plugin.py."""

from __future__ import annotations

import http.client
import time

import pytest
import requests

from tests.integration.conftest import REPO_ROOT

pytestmark = pytest.mark.integration


def raw_get(port: int, path: str, method: str = "GET") -> tuple[int, dict, bytes]:
    """A request with the path sent exactly as given (requests would normalise `..`)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path)
        reply = conn.getresponse()
        return reply.status, {k.lower(): v for k, v in reply.getheaders()}, reply.read()
    finally:
        conn.close()


def test_the_entrypoint_prints_one_ready_line_with_the_ui_address(server):
    # The entrypoint polls /ping on its own, so its line may follow the fixture's first 200 by a poll or two.
    deadline = time.monotonic() + 30
    while True:
        out = (server.run_dir / "entrypoint.out").read_text()
        ready = [line for line in out.splitlines() if line.startswith("entrypoint: ready")]
        if ready or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    port = server.ports["inference"]
    assert ready == [f"entrypoint: ready: open http://127.0.0.1:{port}/ui/ "
                     f"(web UI; API POST http://127.0.0.1:{port}/invocations)"], out
    assert requests.get(f"http://127.0.0.1:{port}/ui/", timeout=10).status_code == 200


def test_the_page_and_its_files_come_from_the_inference_port_with_a_strict_policy(server):
    port = server.ports["inference"]
    status, headers, _ = raw_get(port, "/ui")
    assert (status, headers["location"]) == (301, "/ui/")  # relative links need the slash
    status, headers, body = raw_get(port, "/ui/")
    assert status == 200 and headers["content-type"] == "text/html; charset=utf-8"
    assert body == (REPO_ROOT / "web" / "index.html").read_bytes()
    assert headers["x-content-type-options"] == "nosniff"
    policy = headers["content-security-policy"]
    assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy and "object-src 'none'" in policy
    for path, content_type in (("/ui/js/main.js", "text/javascript; charset=utf-8"),
                               ("/ui/app.css", "text/css; charset=utf-8"), ("/ui/favicon.svg", "image/svg+xml")):
        status, headers, body = raw_get(port, path + "?v=1")
        assert (status, headers["content-type"]) == (200, content_type), path
        assert body == (REPO_ROOT / "web" / path.removeprefix("/ui/")).read_bytes()


@pytest.mark.parametrize("path", [
    "/ui/../Makefile", "/ui/%2e%2e/Makefile", "/ui/js/../../Makefile", "/ui/..%2fMakefile", "/ui/%2fetc/passwd",
    "/ui//etc/hostname", "/ui/.hidden.js", "/ui/js/", "/ui/nope.html", "/ui/index.html%00.js", "/ui/README.md",
    "/ui/..\\Makefile",
])
def test_nothing_outside_the_ui_folder_or_of_an_unknown_kind_is_served(server, path):
    status, _, body = raw_get(server.ports["inference"], path)
    assert status in (400, 404), (path, status, body[:200])
    assert b".PHONY" not in body and b"root:" not in body and b"# The web UI" not in body


def test_the_ui_answers_get_only(server):
    for method in ("POST", "PUT", "DELETE"):
        status, headers, _ = raw_get(server.ports["inference"], "/ui/", method)
        assert (status, headers.get("allow")) == (405, "GET"), method

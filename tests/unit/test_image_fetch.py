"""image_fetch against real servers on 127.0.0.1, with DNS faked so that no other address is ever contacted.

The autouse `connections` fixture records every address the fetcher opens a socket to and lets only 127.0.0.1
through, so refusal tests assert that nothing was connected to instead of trusting the error alone.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import socket
import ssl
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from segserve.media import image_fetch
from segserve.contract.errors import ImageFetchFailed, InvalidRequest, PayloadTooLarge
from segserve.media.image_fetch import DEFAULT_POLICY, FetchPolicy, fetch_image_bytes, is_public_address
from tests.processes import free_port

CAP = 1000
BUDGET = 1.0
PUBLIC = "93.184.215.14"  # never contacted: `connections` refuses every address but 127.0.0.1

NON_PUBLIC = [
    "127.0.0.1", "127.255.255.254", "10.0.0.5", "172.16.0.1", "192.168.1.1", "169.254.169.254", "100.64.0.1",
    "0.0.0.0", "224.0.0.1", "239.255.255.250", "255.255.255.255", "240.0.0.1", "192.0.2.1", "198.18.0.1",
    "::1", "::", "fe80::1", "fd00:ec2::254", "fc00::1", "ff02::1", "ff0e::1", "2001:db8::1",
    "::ffff:127.0.0.1", "::ffff:169.254.169.254", "::ffff:10.0.0.5",  # IPv4-mapped
    "64:ff9b::a9fe:a9fe",  # NAT64 of the metadata service
    "2002:a9fe:a9fe::1", "2002:a00:5::1",  # 6to4 of 169.254.169.254 and 10.0.0.5
    "2001:0:4136:e378:8000:63bf:3fff:fdd2",  # Teredo
]
PUBLIC_ADDRESSES = ["8.8.8.8", "1.1.1.1", PUBLIC, "2606:4700:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808",
                    "2002:808:808::1"]


class FakeDNS:
    """A resolver with getaddrinfo's signature that answers from a table and records every lookup."""

    def __init__(self, answers: dict[str, list[str]]):
        self.answers = answers
        self.lookups: list[str] = []

    def __call__(self, host, port, family=0, type=0, proto=0, flags=0):
        self.lookups.append(host)
        if host not in self.answers:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [(socket.AF_INET6 if ":" in address else socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))
                for address in self.answers[host]]


class Origin:
    """A threaded server on 127.0.0.1; `routes` maps a request path to a function writing the raw response."""

    def __init__(self, tls: ssl.SSLContext | None = None):
        self.routes = {}
        self.seen = []  # (path, Host header) of every request received
        origin = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                origin.seen.append((self.path, self.headers["Host"]))
                try:
                    origin.routes.get(self.path, reply(404))(self)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the fetcher hung up, as it should on a slow or oversized response

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        if tls is not None:
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        self.scheme = "https" if tls else "http"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def url(self, path: str, host: str = "img.test") -> str:
        return f"{self.scheme}://{host}:{self.port}{path}"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def reply(status: int = 200, body: bytes = b"", length: int | None = None, **headers: str):
    """A route answering `status` and `body`; Content-Length is len(body) unless given, omitted if -1."""
    length = len(body) if length is None else length
    lines = [f"HTTP/1.1 {status} X", "Connection: close"] + ([f"Content-Length: {length}"] if length >= 0 else [])
    lines += [f"{name}: {value}" for name, value in headers.items()]
    raw = ("\r\n".join(lines) + "\r\n\r\n").encode() + body
    return lambda handler: handler.wfile.write(raw)


def chunked(*chunks: bytes):
    def route(handler):
        handler.wfile.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n")
        for chunk in (*chunks, b""):
            handler.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
    return route


def after(seconds: float, route):
    def delayed(handler):
        time.sleep(seconds)
        route(handler)
    return delayed


def drip(prefix: bytes, seconds: float = 4 * BUDGET):
    """Send `prefix`, then one byte every 0.1 s: never idle long enough for a per-read timeout to fire."""
    def route(handler):
        handler.wfile.write(prefix)
        for _ in range(int(seconds / 0.1)):
            time.sleep(0.1)
            handler.wfile.write(b"x")
    return route


@pytest.fixture(autouse=True)
def connections(monkeypatch):
    seen = []
    real_create_connection = socket.create_connection

    def spy(address, *args, **kwargs):
        seen.append(address[0])
        if address[0] != "127.0.0.1":
            raise ConnectionRefusedError(f"the test refuses to connect to {address[0]}")
        return real_create_connection(address, *args, **kwargs)

    monkeypatch.setattr(image_fetch.socket, "create_connection", spy)
    return seen


@pytest.fixture
def dns():
    return FakeDNS({"img.test": ["127.0.0.1"], "metadata.test": ["169.254.169.254"]})


@pytest.fixture
def policy(dns):
    """Allows exactly 127.0.0.1, with a small cap and budget so that both limits are cheap to reach."""
    loopback = ipaddress.ip_address("127.0.0.1")
    return FetchPolicy(max_bytes=CAP, total_timeout=BUDGET, resolver=dns, allow_address=lambda ip: ip == loopback)


@pytest.fixture
def origin():
    server = Origin()
    yield server
    server.close()


def refused(url: str, policy: FetchPolicy) -> InvalidRequest:
    """The error for a URL refused as the client's mistake: plain InvalidRequest, not a failed fetch."""
    with pytest.raises(InvalidRequest) as caught:
        fetch_image_bytes(url, policy)
    assert type(caught.value) is InvalidRequest
    assert (caught.value.status, caught.value.field) == (400, "image_url")
    return caught.value


# --- success ---------------------------------------------------------------------------------------------------

def test_fetches_from_the_checked_ip_with_the_url_hostname_as_host(origin, policy, dns, connections):
    origin.routes["/img.png"] = reply(200, b"\x89PNG-bytes")
    assert fetch_image_bytes(origin.url("/img.png"), policy) == b"\x89PNG-bytes"
    assert origin.seen == [("/img.png", f"img.test:{origin.port}")]
    assert dns.lookups == ["img.test"]
    assert connections == ["127.0.0.1"]


def test_sends_the_query_but_not_the_fragment(origin, policy):
    origin.routes["/img.png?X-Amz-Signature=abc"] = reply(200, b"signed")
    assert fetch_image_bytes(origin.url("/img.png?X-Amz-Signature=abc#part"), policy) == b"signed"


def test_idna_host_is_looked_up_and_sent_in_ascii(origin, policy):
    dns = FakeDNS({"xn--bcher-kva.test": ["127.0.0.1"]})
    origin.routes["/img"] = reply(200, b"ok")
    assert fetch_image_bytes(origin.url("/img", host="bücher.test"), dataclasses.replace(policy, resolver=dns)) == b"ok"
    assert origin.seen == [("/img", f"xn--bcher-kva.test:{origin.port}")]


@pytest.mark.parametrize("route", [reply(200, b"x" * CAP), chunked(b"x" * 600, b"x" * (CAP - 600))],
                         ids=["content-length", "chunked"])
def test_body_of_exactly_the_cap_is_accepted(origin, policy, route):
    origin.routes["/img"] = route
    assert fetch_image_bytes(origin.url("/img"), policy) == b"x" * CAP


# --- size and time limits ----------------------------------------------------------------------------------------

def test_content_length_over_the_cap_is_refused_before_the_body_is_read(origin, policy):
    def headers_then_late_body(handler):
        reply(200, length=CAP + 1)(handler)
        time.sleep(3)  # past the budget: a 413 rather than a timeout proves the body was never waited for
        handler.wfile.write(b"x" * (CAP + 1))

    origin.routes["/big"] = headers_then_late_body
    started = time.monotonic()
    with pytest.raises(PayloadTooLarge):
        fetch_image_bytes(origin.url("/big"), policy)
    assert time.monotonic() - started < BUDGET / 2


@pytest.mark.parametrize("route", [chunked(b"x" * 400, b"x" * 400, b"x" * 400), reply(200, b"x" * (CAP + 1), length=-1)],
                         ids=["chunked", "until-close"])
def test_body_growing_past_the_cap_is_refused(origin, policy, route):
    origin.routes["/big"] = route
    with pytest.raises(PayloadTooLarge):
        fetch_image_bytes(origin.url("/big"), policy)


def test_body_cut_short_of_its_content_length_fails(origin, policy):
    origin.routes["/short"] = reply(200, b"x" * 50, length=100)
    with pytest.raises(ImageFetchFailed, match="before sending the whole body"):
        fetch_image_bytes(origin.url("/short"), policy)


@pytest.mark.parametrize("prefix", [b"HTTP/1.1 200 OK\r\nX-Slow: ", b"HTTP/1.1 200 OK\r\nContent-Length: 500\r\n\r\n"],
                         ids=["headers", "body"])
def test_slow_drip_is_cut_off_at_the_budget(origin, policy, prefix):
    origin.routes["/drip"] = drip(prefix)
    started = time.monotonic()
    with pytest.raises(ImageFetchFailed, match="timed out"):
        fetch_image_bytes(origin.url("/drip"), policy)
    assert BUDGET - 0.1 < time.monotonic() - started < BUDGET + 2


def test_budget_covers_all_redirect_hops_together(origin, policy):
    origin.routes["/slow"] = after(0.4, reply(302, Location="/slow"))  # 4 hops x 0.4 s > the 1 s budget
    started = time.monotonic()
    with pytest.raises(ImageFetchFailed, match="timed out"):
        fetch_image_bytes(origin.url("/slow"), policy)
    assert time.monotonic() - started < BUDGET + 0.3


# --- redirects ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("location", ["/dir/img.png", "img.png", "../dir/img.png", "//img.test:{port}/dir/img.png",
                                      "http://img.test:{port}/dir/img.png"])
def test_redirect_location_is_resolved_against_the_current_url(origin, policy, location):
    origin.routes["/dir/start"] = reply(301, Location=location.format(port=origin.port))
    origin.routes["/dir/img.png"] = reply(200, b"moved")
    assert fetch_image_bytes(origin.url("/dir/start"), policy) == b"moved"
    assert [path for path, _ in origin.seen] == ["/dir/start", "/dir/img.png"]


@pytest.mark.parametrize("location", [
    "http://metadata.test/latest/meta-data/", "http://169.254.169.254/latest/meta-data/", "http://[fd00:ec2::254]/",
    "http://10.0.0.5/", "file:///etc/passwd", "gopher://img.test/", "s3://bucket/key",
    "http://user:pw@img.test:{port}/img.png",
])
def test_redirect_to_a_refused_target_is_not_followed(origin, policy, connections, location):
    origin.routes["/start"] = reply(302, Location=location.format(port=origin.port))
    refused(origin.url("/start"), policy)
    assert connections == ["127.0.0.1"]  # the first hop only
    assert len(origin.seen) == 1


def test_redirect_loop_is_capped(origin, policy):
    origin.routes["/loop"] = reply(302, Location="/loop")
    error = refused(origin.url("/loop"), policy)
    assert "redirected more than 3 times" in error.message
    assert len(origin.seen) == 1 + policy.max_redirects


def test_max_redirects_hops_are_followed(origin, policy):
    for hop in range(policy.max_redirects):
        origin.routes[f"/r{hop}"] = reply(307, Location=f"/r{hop + 1}")
    origin.routes[f"/r{policy.max_redirects}"] = reply(200, b"end")
    assert fetch_image_bytes(origin.url("/r0"), policy) == b"end"


# --- origin failures ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("route, error", [
    (reply(404), InvalidRequest), (reply(403), InvalidRequest), (reply(500), ImageFetchFailed),
    (reply(302), ImageFetchFailed), (reply(204), ImageFetchFailed), (lambda h: h.wfile.write(b"garbage\r\n\r\n"), ImageFetchFailed),
], ids=["404", "403", "500", "302-without-location", "204", "not-http"])
def test_origin_failure_is_a_400_class_error(origin, policy, route, error):
    origin.routes["/img"] = route
    with pytest.raises(InvalidRequest) as caught:
        fetch_image_bytes(origin.url("/img"), policy)
    assert type(caught.value) is error
    assert (caught.value.status, caught.value.field) == (400, "image_url")


def test_closed_port_fails_to_fetch(policy):
    port = free_port()  # nothing listens there
    with pytest.raises(ImageFetchFailed, match="ConnectionRefusedError"):
        fetch_image_bytes(f"http://img.test:{port}/img", policy)


# --- DNS and the address policy ---------------------------------------------------------------------------------

def test_host_is_resolved_once_and_the_checked_answer_is_the_one_connected_to(origin, policy, connections):
    class RebindingDNS(FakeDNS):
        def __call__(self, host, port, **kwargs):
            answers = super().__call__(host, port, **kwargs)
            self.answers[host] = ["169.254.169.254"]  # every later lookup gets the metadata service
            return answers

    dns = RebindingDNS({"img.test": ["127.0.0.1"]})
    origin.routes["/img"] = reply(200, b"ok")
    assert fetch_image_bytes(origin.url("/img"), dataclasses.replace(policy, resolver=dns)) == b"ok"
    assert dns.lookups == ["img.test"]
    assert connections == ["127.0.0.1"]


@pytest.mark.parametrize("answers", [["127.0.0.1", "10.0.0.5"], ["169.254.169.254", "127.0.0.1"]])
def test_host_with_any_refused_answer_is_refused(origin, policy, connections, answers):
    dns = FakeDNS({"img.test": answers})
    refused(origin.url("/img"), dataclasses.replace(policy, resolver=dns))
    assert connections == []
    assert origin.seen == []


def test_unresolvable_host_is_refused(policy, connections):
    error = refused("http://nowhere.test/img", policy)
    assert "could not be resolved" in error.message
    assert connections == []


def test_default_policy_connects_to_the_checked_public_address(connections):
    policy = dataclasses.replace(DEFAULT_POLICY, resolver=FakeDNS({"public.test": [PUBLIC]}))
    with pytest.raises(ImageFetchFailed):  # the spy refuses the connection: this test never leaves the machine
        fetch_image_bytes("http://public.test/img.png", policy)
    assert connections == [PUBLIC]


@pytest.mark.parametrize("answers", [[PUBLIC, "10.0.0.5"], ["fd00:ec2::254", PUBLIC]])
def test_default_policy_refuses_a_name_with_a_public_and_a_private_answer(connections, answers):
    refused("http://mixed.test/img.png", dataclasses.replace(DEFAULT_POLICY, resolver=FakeDNS({"mixed.test": answers})))
    assert connections == []


@pytest.mark.parametrize("address", NON_PUBLIC)
def test_default_policy_refuses_a_name_resolving_to_a_non_public_address(connections, address):
    dns = FakeDNS({"evil.test": [address]})
    refused("http://evil.test/img.png", dataclasses.replace(DEFAULT_POLICY, resolver=dns))
    assert dns.lookups == ["evil.test"]
    assert connections == []


@pytest.mark.parametrize("url", [
    "http://127.0.0.1/", "http://[::1]/", "http://169.254.169.254/latest/meta-data/", "http://0.0.0.0/",
    "http://10.1.2.3/", "http://[::ffff:127.0.0.1]/", "http://[::ffff:a9fe:a9fe]/", "http://[fd00:ec2::254]/",
    "https://[fe80::1]:8443/",
])
def test_default_policy_refuses_ip_literals_without_a_lookup(connections, url):
    dns = FakeDNS({})
    refused(url, dataclasses.replace(DEFAULT_POLICY, resolver=dns))
    assert dns.lookups == []
    assert connections == []


@pytest.mark.parametrize("url", ["http://localhost/", "http://localhost:8080/x"])
def test_default_policy_refuses_localhost_with_the_system_resolver(connections, url):
    refused(url, DEFAULT_POLICY)
    assert connections == []


@pytest.mark.parametrize("host", ["2130706433", "0177.0.0.1", "0x7f000001", "0x7f.1", "127.1", "0", "017700000001"])
def test_numeric_host_forms_other_than_dotted_quads_are_refused(policy, dns, connections, host):
    # `policy` allows 127.0.0.1, so only the parser can be what refuses these spellings of it.
    refused(f"http://{host}/", policy)
    assert dns.lookups == []
    assert connections == []


@pytest.mark.parametrize("url", [
    "file:///etc/passwd", "gopher://img.test/", "ftp://img.test/x", "img.test/x.png", "",
    "http://user:pw@img.test/", "http://user@img.test/", "http://@img.test/",
    "http:///x", "http://:80/", "http://img..test/", "http://[::1/",
    "http://img.test:0/", "http://img.test:65536/", "http://img.test:abc/",
    "http://img.test/a b", "http://img.test/\u00e9",
])
def test_malformed_or_unsafe_urls_are_refused(policy, dns, connections, url):
    refused(url, policy)
    assert dns.lookups == []
    assert connections == []


@pytest.mark.parametrize("address", NON_PUBLIC)
def test_is_public_address_refuses(address):
    assert not is_public_address(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", PUBLIC_ADDRESSES)
def test_is_public_address_allows(address):
    assert is_public_address(ipaddress.ip_address(address))


# --- https: the socket goes to the checked IP, TLS still checks the URL's hostname --------------------------------

@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    """A self-signed certificate for img.test, made with the openssl command (no Python package needed)."""
    folder = tmp_path_factory.mktemp("tls")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", folder / "key.pem", "-out", folder / "cert.pem", "-days", "1",
         "-subj", "/CN=img.test", "-addext", "subjectAltName=DNS:img.test"],
        check=True, capture_output=True,
    )
    return folder / "cert.pem", folder / "key.pem"


@pytest.fixture
def tls_origin(certificate):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*certificate)
    server_names = []
    context.sni_callback = lambda sock, name, ctx: server_names.append(name)
    server = Origin(tls=context)
    server.server_names = server_names
    server.routes["/img"] = reply(200, b"secure")
    yield server
    server.close()


@pytest.fixture
def tls_policy(policy, certificate):
    return dataclasses.replace(policy, tls_context=ssl.create_default_context(cafile=certificate[0]))


def test_https_sends_the_hostname_as_sni_and_host(tls_origin, tls_policy, connections):
    assert fetch_image_bytes(tls_origin.url("/img"), tls_policy) == b"secure"
    assert tls_origin.server_names == ["img.test"]
    assert tls_origin.seen == [("/img", f"img.test:{tls_origin.port}")]
    assert connections == ["127.0.0.1"]


def test_https_certificate_for_another_name_is_refused(tls_origin, tls_policy):
    # other.test resolves to the same server; its certificate names img.test, not other.test.
    dns = FakeDNS({"other.test": ["127.0.0.1"]})
    with pytest.raises(ImageFetchFailed, match="SSLCertVerificationError"):
        fetch_image_bytes(tls_origin.url("/img", host="other.test"), dataclasses.replace(tls_policy, resolver=dns))
    assert tls_origin.seen == []


def test_https_uses_the_system_trust_store_by_default(tls_origin, policy):
    with pytest.raises(ImageFetchFailed, match="SSLCertVerificationError"):
        fetch_image_bytes(tls_origin.url("/img"), policy)
    assert tls_origin.seen == []


# --- s3:// goes to the injected reader -----------------------------------------------------------------------------

def test_s3_without_a_reader_is_refused(policy):
    error = refused("s3://bucket/key.png", policy)
    assert "S3 is not configured" in error.message


def test_s3_reader_gets_bucket_whole_key_and_cap(policy):
    calls = []
    reader = lambda bucket, key, max_bytes: calls.append((bucket, key, max_bytes)) or b"object"
    url = "s3://my-bucket/images/a?b#c.png"
    assert fetch_image_bytes(url, dataclasses.replace(policy, s3_reader=reader)) == b"object"
    assert calls == [("my-bucket", "images/a?b#c.png", CAP)]


def test_s3_reader_returning_more_than_the_cap_is_refused(policy):
    with pytest.raises(PayloadTooLarge):
        fetch_image_bytes("s3://bucket/key", dataclasses.replace(policy, s3_reader=lambda *_: b"x" * (CAP + 1)))


@pytest.mark.parametrize("url", ["s3://", "s3://bucket", "s3://bucket/", "s3://Bad_Bucket/key", "s3://ab/key"])
def test_malformed_s3_urls_are_refused_before_the_reader(policy, url):
    calls = []
    refused(url, dataclasses.replace(policy, s3_reader=lambda *args: calls.append(args) or b""))
    assert calls == []


def test_s3_can_be_left_out_of_the_schemes(policy):
    calls = []
    no_s3 = dataclasses.replace(policy, schemes=frozenset({"https"}), s3_reader=lambda *args: calls.append(args) or b"")
    refused("s3://bucket/key", no_s3)
    refused("http://img.test/img", no_s3)
    assert calls == []

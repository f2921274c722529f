"""Fetch the image a request names by URL without letting the URL reach anything private.

On SageMaker a naive fetch can reach the instance metadata service (169.254.169.254) or the VPC, so this module
is a security boundary:

* only http(s) URLs without credentials; s3:// only through an injected reader, so boto3 stays optional;
* the host is resolved once, EVERY answer must pass `FetchPolicy.allow_address`, and the socket is opened to the
  checked address itself, so a second DNS answer (rebinding) is never used. The URL's hostname still goes out as
  the Host header and, for https, as SNI and as the name the certificate must match;
* redirects are followed here, one hop at a time, each re-checked in full;
* one deadline covers the whole fetch (connects, TLS, headers, redirects, body) and the body is capped.
"""

from __future__ import annotations

import functools
import http.client
import io
import ipaddress
import re
import socket
import ssl
import time
from dataclasses import dataclass
from typing import Callable, NamedTuple
from urllib.parse import SplitResult, urljoin, urlsplit

from segserve.contract.errors import ImageFetchFailed, InvalidRequest, PayloadTooLarge

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

FIELD = "image_url"
_DEFAULT_PORTS = {"http": 80, "https": 443}
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_READ_SIZE = 64 * 1024
# identity: we never decompress, so there are no compression bombs. close: one request per connection.
_HEADERS = {"Accept": "image/*", "Accept-Encoding": "identity", "Connection": "close", "User-Agent": "segserve"}
_SHARED_ADDRESS_SPACE = ipaddress.ip_network("100.64.0.0/10")  # carrier-grade NAT, not routable on the internet
_IMDS_V6 = ipaddress.ip_address("fd00:ec2::254")  # the instance metadata service on Nitro instances, over IPv6
_NAT64 = ipaddress.ip_network("64:ff9b::/96")  # IPv6-only subnets (AWS DNS64) reach IPv4 hosts through this prefix
_HOSTNAME = re.compile(r"[a-z0-9_.-]+")  # a DNS name after IDNA encoding
_REQUEST_TARGET = re.compile(r"[\x21-\x7e]+")  # printable ASCII: http.client refuses the rest; we won't guess
_NUMERIC_LABEL = re.compile(r"[0-9]+|0x[0-9a-f]*")
_S3_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")


def _embedded_ipv4(ip: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries (mapped, 6to4, NAT64), which is where packets really go."""
    if ip.version != 6:
        return None
    embedded = ip.ipv4_mapped or ip.sixtofour
    if embedded is None and ip in _NAT64:
        embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return embedded


def is_public_address(ip: IPAddress) -> bool:
    """True only for globally routable unicast addresses; IPv6 forms that embed an IPv4 address are judged by it."""
    embedded = _embedded_ipv4(ip)
    if embedded is not None:
        return is_public_address(embedded)
    # is_global alone passes multicast, and its ranges have shifted between Python releases: be explicit.
    return ip.is_global and not (ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_multicast
                                 or ip.is_reserved or ip.is_unspecified or ip in _SHARED_ADDRESS_SPACE)


def is_unicast_outside_metadata(ip: IPAddress) -> bool:
    """The relaxed policy (private image servers allowed): anything unicast except the instance metadata
    service, i.e. link-local addresses (169.254.169.254) and AWS's IPv6 endpoint fd00:ec2::254, in any form."""
    embedded = _embedded_ipv4(ip)
    if embedded is not None:
        return is_unicast_outside_metadata(embedded)
    return not (ip.is_link_local or ip.is_multicast or ip.is_unspecified or ip.is_reserved or ip == _IMDS_V6)


@dataclass(frozen=True)
class FetchPolicy:
    """What one fetch may do. The defaults are the production policy; tests and S3 deployments replace fields."""

    max_bytes: int = 20 * 1024 * 1024
    connect_timeout: float = 3.0  # per TCP connect
    total_timeout: float = 10.0  # the whole fetch: every hop's connect, TLS, request, headers, and the body
    max_redirects: int = 3
    schemes: frozenset[str] = frozenset({"http", "https", "s3"})
    resolver: Callable[..., list] = socket.getaddrinfo  # called as resolver(host, port, type=SOCK_STREAM)
    allow_address: Callable[[IPAddress], bool] = is_public_address
    s3_reader: Callable[[str, str, int], bytes] | None = None  # (bucket, key, max_bytes) -> bytes; None: no S3
    tls_context: ssl.SSLContext | None = None  # None: the system trust store


DEFAULT_POLICY = FetchPolicy()


def fetch_image_bytes(url: str, policy: FetchPolicy = DEFAULT_POLICY) -> bytes:
    """The bytes `url` names (http, https or s3), at most `policy.max_bytes`; failures raise ServiceErrors."""
    scheme = _split(url).scheme
    if scheme not in policy.schemes:
        raise _invalid(f"image_url must use one of the schemes {', '.join(sorted(policy.schemes))}")
    return _fetch_s3(url, policy) if scheme == "s3" else _fetch_http(url, policy)


def read_s3_object(bucket: str, key: str, max_bytes: int, client=None) -> bytes:
    """Read s3://bucket/key with boto3, stopping after max_bytes + 1 bytes. Pass a client made once per worker."""
    import boto3  # here, not at the top: boto3 is the optional "aws" extra
    from botocore.exceptions import BotoCoreError, ClientError

    client = client or boto3.client("s3")
    try:
        response = client.get_object(Bucket=bucket, Key=key)
        with response["Body"] as body:
            if response["ContentLength"] > max_bytes:
                raise _too_large(max_bytes)
            data = body.read(max_bytes + 1)
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") in {"NoSuchKey", "NoSuchBucket", "AccessDenied"}:
            raise _invalid(f"s3 bucket {bucket} has no object with that key that this endpoint may read") from error
        raise ImageFetchFailed(f"could not read from s3 bucket {bucket}", FIELD) from error
    except BotoCoreError as error:  # connection failures and timeouts
        raise ImageFetchFailed(f"could not read from s3 bucket {bucket}", FIELD) from error
    if len(data) > max_bytes:
        raise _too_large(max_bytes)
    return data


class _HttpTarget(NamedTuple):
    scheme: str
    host: str  # ASCII: an IDNA-encoded DNS name or an IP literal without brackets
    port: int
    host_header: str
    request_target: str  # path and query; the fragment is never sent


def _fetch_http(url: str, policy: FetchPolicy) -> bytes:
    deadline = time.monotonic() + policy.total_timeout
    for _hop in range(policy.max_redirects + 1):
        target = _parse_http_url(url, policy)
        connection = _PinnedConnection(target, _checked_address(target, policy), deadline, policy)
        try:
            connection.request("GET", target.request_target, headers={"Host": target.host_header, **_HEADERS})
            with connection.getresponse() as response:  # with Connection: close, the response owns the socket
                location = response.getheader("Location")
                if response.status in _REDIRECT_STATUSES and location:
                    url = urljoin(url, location)
                    continue
                return _read_body(response, policy)
        except (OSError, http.client.HTTPException) as error:  # socket.timeout and ssl.SSLError are OSErrors
            reason = "timed out" if isinstance(error, TimeoutError) else type(error).__name__
            raise ImageFetchFailed(f"could not fetch image_url from {target.host}: {reason}", FIELD) from error
        finally:
            connection.close()
    raise _invalid(f"image_url redirected more than {policy.max_redirects} times")


def _parse_http_url(url: str, policy: FetchPolicy) -> _HttpTarget:
    parts = _split(url)
    if parts.scheme not in _DEFAULT_PORTS or parts.scheme not in policy.schemes:
        raise _invalid("image_url must be an http or https URL")
    if "@" in parts.netloc:
        raise _invalid("image_url must not contain credentials")
    try:
        port = _DEFAULT_PORTS[parts.scheme] if parts.port is None else parts.port
    except ValueError:  # not a number, or above 65535
        port = 0
    if port == 0:
        raise _invalid("image_url has an invalid port")
    host = parts.hostname or ""
    if ":" not in host:  # not an IPv6 literal
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError:
            raise _invalid("image_url has an invalid host name") from None
        if not _HOSTNAME.fullmatch(host):
            raise _invalid("image_url has no valid host")
        # inet_aton reads 2130706433, 0177.0.0.1, 0x7f.1 and 127.1 as 127.0.0.1; no DNS name ends in a number.
        if _NUMERIC_LABEL.fullmatch(host.rstrip(".").rpartition(".")[2]) and not _ip_literal(host):
            raise _invalid("image_url must write an IPv4 address as four decimal numbers")
    bracketed = f"[{host}]" if ":" in host else host
    request_target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    if not _REQUEST_TARGET.fullmatch(request_target):
        raise _invalid("image_url path must be percent-encoded ASCII")
    host_header = bracketed if port == _DEFAULT_PORTS[parts.scheme] else f"{bracketed}:{port}"
    return _HttpTarget(parts.scheme, host, port, host_header, request_target)


def _checked_address(target: _HttpTarget, policy: FetchPolicy) -> IPAddress:
    """Resolve once; refuse the host if ANY answer is disallowed (mixed answers are how rebinding starts)."""
    literal = _ip_literal(target.host)
    if literal is not None:
        addresses = [literal]
    else:
        try:
            answers = policy.resolver(target.host, target.port, type=socket.SOCK_STREAM)
        except OSError:
            raise _invalid(f"image_url host {target.host} could not be resolved") from None
        addresses = [ipaddress.ip_address(sockaddr[0]) for *_, sockaddr in answers]
    if not addresses or not all(policy.allow_address(address) for address in addresses):
        raise _invalid(f"image_url host {target.host} is not a public address")
    return addresses[0]


class _PinnedConnection(http.client.HTTPConnection):
    """HTTP(S) to an address that was already checked.

    http.client would resolve the host name again inside connect(); overriding connect() (the hook HTTPSConnection
    itself uses) opens the socket to the checked IP instead. TLS gets the URL's hostname for SNI and verification.
    """

    def __init__(self, target: _HttpTarget, address: IPAddress, deadline: float, policy: FetchPolicy):
        super().__init__(str(address), target.port)
        self._target, self._deadline, self._policy = target, deadline, policy

    def connect(self) -> None:
        timeout = min(self._policy.connect_timeout, _time_left(self._deadline))
        sock = socket.create_connection((self.host, self.port), timeout)
        try:
            if self._target.scheme == "https":
                sock.settimeout(_time_left(self._deadline))  # CPython bounds the whole handshake by this
                tls = self._policy.tls_context or _system_tls_context()
                sock = tls.wrap_socket(sock, server_hostname=self._target.host)
        except BaseException:
            sock.close()
            raise
        self.sock = _DeadlineSocket(sock, self._deadline)


class _DeadlineSocket:
    """The connected socket as http.client sees it: every send and receive gets only the time left.

    http.client reads headers, chunk sizes and bodies in many small receives, so a fixed per-call timeout would let
    a server dripping one byte at a time hold the worker indefinitely.
    """

    def __init__(self, sock: socket.socket, deadline: float):
        self._sock, self._deadline = sock, deadline

    def arm(self) -> None:
        self._sock.settimeout(_time_left(self._deadline))

    def sendall(self, data: bytes) -> None:
        self.arm()
        self._sock.sendall(data)

    def makefile(self, mode: str) -> io.BufferedReader:  # what http.client reads the response through
        return io.BufferedReader(_DeadlineReader(self, self._sock.makefile("rb", buffering=0)))

    def close(self) -> None:
        self._sock.close()  # like any socket, really closed once the reader from makefile() is closed too


class _DeadlineReader(io.RawIOBase):
    def __init__(self, owner: _DeadlineSocket, raw: io.RawIOBase):
        super().__init__()
        self._owner, self._raw = owner, raw

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        self._owner.arm()
        return self._raw.readinto(buffer)

    def close(self) -> None:
        super().close()
        self._raw.close()


def _read_body(response: http.client.HTTPResponse, policy: FetchPolicy) -> bytes:
    if response.status != 200:
        error = InvalidRequest if 400 <= response.status < 500 else ImageFetchFailed
        raise error(f"image_url answered HTTP {response.status}", FIELD)
    if response.length is not None and response.length > policy.max_bytes:
        raise _too_large(policy.max_bytes)  # before reading a byte of the body
    body = bytearray()
    while chunk := response.read1(_READ_SIZE):
        body += chunk
        if len(body) > policy.max_bytes:
            raise _too_large(policy.max_bytes)
    if response.length:  # bytes still owed: the origin closed early
        raise ImageFetchFailed("image_url closed the connection before sending the whole body", FIELD)
    return bytes(body)


def _fetch_s3(url: str, policy: FetchPolicy) -> bytes:
    if policy.s3_reader is None:
        raise _invalid("s3:// image URLs are not enabled on this endpoint: S3 is not configured")
    # Split by hand: object keys may contain '?' and '#', which urlsplit would cut off.
    bucket, _, key = url.split("://", 1)[1].partition("/")
    if not _S3_BUCKET.fullmatch(bucket) or not key:
        raise _invalid("image_url must look like s3://bucket/key")
    data = policy.s3_reader(bucket, key, policy.max_bytes)
    if len(data) > policy.max_bytes:
        raise _too_large(policy.max_bytes)
    return data


def _split(url: str) -> SplitResult:
    try:
        return urlsplit(url)
    except ValueError:  # e.g. an unbalanced or invalid [IPv6] host
        raise _invalid("image_url is not a valid URL") from None


def _ip_literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _time_left(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("image fetch time budget used up")
    return left


@functools.cache
def _system_tls_context() -> ssl.SSLContext:
    return ssl.create_default_context()  # verifies the chain and the name given as server_hostname; loaded once


def _invalid(message: str) -> InvalidRequest:
    return InvalidRequest(message, FIELD)


def _too_large(max_bytes: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"image_url body is larger than {max_bytes} bytes", FIELD)

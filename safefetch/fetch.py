"""Download a user-given URL without reaching anything internal.

http and https on the usual ports only; the name resolved once and every address it
gives checked (loopback, private, link-local, multicast, reserved, unspecified and cloud
metadata refused); the connection made to that checked address, the name sent as Host
and as TLS SNI (so no second lookup can swap the address); each redirect checked again,
at most three; one deadline for the whole download; a size cap before and while reading.
"""

import ipaddress
import socket
import threading
import time
from collections.abc import Collection
from dataclasses import dataclass
from urllib.parse import SplitResult, urljoin, urlsplit

import httpx

PORTS = {"http": 80, "https": 443}
METADATA_NAMES = {"metadata.google.internal", "metadata", "instance-data"}
METADATA_ADDRESSES = {
    ipaddress.ip_address("169.254.169.254"),
    ipaddress.ip_address("fd00:ec2::254"),
}
MAX_REDIRECTS = 3
REDIRECTS = {301, 302, 303, 307, 308}


class FetchRefused(Exception):
    """The URL was not fetched, and why; permanent when asking again cannot help."""

    def __init__(self, reason: str, *, permanent: bool = True) -> None:
        super().__init__(reason)
        self.reason = reason
        self.permanent = permanent


@dataclass(frozen=True)
class Fetched:
    url: str
    content_type: str
    content: bytes


def address_internal(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    return (
        address in METADATA_ADDRESSES
        or not address.is_global
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
        or address.is_loopback
        or address.is_link_local
        or address.is_private
    )


def url_check(url: str, *, allowed: Collection[str] = ()) -> SplitResult:
    """The URL split, when its form may be fetched: http(s), a host, a usual port, no
    internal literal address or name. Names are resolved only by `fetch`. allowed holds
    "host:port" pairs let through though internal (a test's own server)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise FetchRefused(f"not a URL: {exc}") from None
    if parts.scheme not in PORTS:
        raise FetchRefused(f"only http and https URLs are fetched, not {parts.scheme or 'none'!r}")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise FetchRefused("the URL has no host")
    port = PORTS[parts.scheme] if port is None else port  # :0 is port 0, not the default
    if f"{host}:{port}" in allowed:
        return parts
    if port not in PORTS.values():
        raise FetchRefused(f"port {port} is not fetched (only 80 and 443)")
    if host == "localhost" or host.endswith(".localhost") or host in METADATA_NAMES:
        raise FetchRefused(f"{host} is an internal address")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        if host.replace(".", "").isdigit():  # 2130706433, 127.1: forms resolvers still take
            raise FetchRefused(f"{host} is not a usual address") from None
        return parts
    if address_internal(address):
        raise FetchRefused(f"{host} is an internal address")
    return parts


def _resolved(parts: SplitResult, *, allowed: Collection[str]) -> str:
    """The one address to connect to: every address the name resolves to must be public."""
    host = parts.hostname.rstrip(".")
    port = PORTS[parts.scheme] if parts.port is None else parts.port
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise FetchRefused(f"{host} does not resolve: {exc}", permanent=False) from None
    addresses = [ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos]
    if f"{host}:{port}" not in allowed and any(address_internal(a) for a in addresses):
        raise FetchRefused(f"{host} resolves to an internal address")
    return str(addresses[0])


def _target(parts: SplitResult, address: str) -> str:
    """The URL with the checked address in place of the name."""
    ip = ipaddress.ip_address(address)
    host = f"[{ip}]" if ip.version == 6 else str(ip)
    port = PORTS[parts.scheme] if parts.port is None else parts.port
    path = parts.path or "/"
    return f"{parts.scheme}://{host}:{port}{path}{'?' + parts.query if parts.query else ''}"


def fetch(
    url: str,
    *,
    max_bytes: int,
    deadline_s: float,
    allowed: Collection[str] = (),
) -> Fetched:
    """GET url within deadline_s in all, at most max_bytes; raise FetchRefused."""
    deadline = time.monotonic() + deadline_s
    with httpx.Client(trust_env=False, follow_redirects=False) as client:
        for _ in range(MAX_REDIRECTS + 1):
            parts = url_check(url, allowed=allowed)
            address = _resolved(parts, allowed=allowed)
            location = _get(client, parts, address, deadline, deadline_s, max_bytes)
            if isinstance(location, Fetched):
                return Fetched(
                    url=url, content_type=location.content_type, content=location.content
                )
            url = urljoin(url, location)
    raise FetchRefused(f"more than {MAX_REDIRECTS} redirects")


def _get(client, parts, address, deadline, deadline_s, max_bytes) -> "Fetched | str":
    """One request to the checked address: the content, or where it redirects."""
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise FetchRefused(f"took longer than {deadline_s:g} s", permanent=False)
    headers = {"Host": parts.netloc.rpartition("@")[2], "Accept": "image/*"}
    extensions = {"sni_hostname": parts.hostname} if parts.scheme == "https" else {}
    request = client.build_request(
        "GET", _target(parts, address), headers=headers, extensions=extensions,
        timeout=httpx.Timeout(remaining),
    )  # fmt: skip
    try:
        response = client.send(request, stream=True)
    except httpx.TimeoutException:
        raise FetchRefused(f"took longer than {deadline_s:g} s", permanent=False) from None
    except httpx.HTTPError as exc:
        raise FetchRefused(f"{exc.__class__.__name__}: {exc}", permanent=False) from None
    # A server that drips its body must not outlast the deadline: shut the socket then.
    sock = response.extensions["network_stream"].get_extra_info("socket")
    watchdog = threading.Timer(max(deadline - time.monotonic(), 0), _shutdown, (sock,))
    watchdog.start()
    try:
        return _read(response, deadline, deadline_s, max_bytes)
    except httpx.HTTPError as exc:
        if time.monotonic() >= deadline:
            raise FetchRefused(f"took longer than {deadline_s:g} s", permanent=False) from None
        raise FetchRefused(f"{exc.__class__.__name__}: {exc}", permanent=False) from None
    finally:
        watchdog.cancel()
        response.close()


def _read(response: httpx.Response, deadline, deadline_s, max_bytes) -> "Fetched | str":
    if response.status_code in REDIRECTS and "location" in response.headers:
        return response.headers["location"]
    if response.status_code >= 400:
        # 4xx: the URL is wrong and stays wrong, except a timeout or a rate limit.
        permanent = response.status_code < 500 and response.status_code not in (408, 429)
        raise FetchRefused(f"HTTP {response.status_code}", permanent=permanent)
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise FetchRefused(f"larger than {max_bytes} bytes ({declared} declared)")
    content = bytearray()
    for chunk in response.iter_raw():
        content += chunk
        if len(content) > max_bytes:
            raise FetchRefused(f"larger than {max_bytes} bytes")
        if time.monotonic() >= deadline:
            raise FetchRefused(f"took longer than {deadline_s:g} s", permanent=False)
    content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
    return Fetched(url=str(response.url), content_type=content_type, content=bytes(content))


def _shutdown(sock: socket.socket | None) -> None:
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

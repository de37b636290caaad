"""The safe fetcher against a real local HTTP server (issue 15, finding 3). The server is
on loopback, so each test lets exactly its host:port through, as settings do for tests;
every other internal target stays refused."""

import io
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from safefetch import FetchRefused, fetch, image_normalize, url_check


def png(size=(4, 3), color=(200, 30, 30)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, format="PNG")
    return out.getvalue()


class Handler(BaseHTTPRequestHandler):
    routes: dict = {}
    seen: list = []

    def do_GET(self) -> None:
        self.seen.append((self.path, self.headers.get("Host")))
        self.routes[self.path](self)

    def log_message(self, *args) -> None:
        pass


def answer(status=200, content_type="image/png", body=b"", headers=()):
    def respond(handler):
        handler.send_response(status)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(body)))
        for name, value in headers:
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(body)

    return respond


def drip(handler, *, every_s=3.0, total=10):
    """A byte every few seconds: each read succeeds, the download never ends in time."""
    handler.send_response(200)
    handler.send_header("Content-Type", "image/png")
    handler.send_header("Content-Length", str(total))
    handler.end_headers()
    try:
        for _ in range(total):
            handler.wfile.write(b"x")
            handler.wfile.flush()
            time.sleep(every_s)
    except OSError:
        pass


def chunked_forever(handler):
    handler.send_response(200)
    handler.send_header("Content-Type", "image/png")
    handler.send_header("Transfer-Encoding", "chunked")
    handler.end_headers()
    try:
        for _ in range(1000):
            handler.wfile.write(b"400\r\n" + b"x" * 1024 + b"\r\n")
    except OSError:
        pass


@pytest.fixture
def server():
    Handler.routes, Handler.seen = {}, []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    host = f"127.0.0.1:{httpd.server_address[1]}"
    yield host
    httpd.shutdown()
    httpd.server_close()


def get(url, allowed=(), **kwargs):
    return fetch(url, max_bytes=kwargs.pop("max_bytes", 1 << 20), deadline_s=4, allowed=allowed)


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://127.0.0.1/", "127.0.0.1 is an internal address"),
        ("http://[::1]/", "::1 is an internal address"),
        ("http://10.0.0.5/", "10.0.0.5 is an internal address"),
        ("http://169.254.169.254/latest/meta-data/", "169.254.169.254 is an internal address"),
        ("http://[fd00:ec2::254]/", "fd00:ec2::254 is an internal address"),
        ("http://0.0.0.0/", "0.0.0.0 is an internal address"),
        ("http://[::ffff:127.0.0.1]/", "::ffff:127.0.0.1 is an internal address"),
        ("http://224.0.0.1/", "224.0.0.1 is an internal address"),
        ("http://localhost/", "localhost is an internal address"),
        ("http://metadata.google.internal/", "metadata.google.internal is an internal address"),
        ("http://2130706433/", "2130706433 is not a usual address"),
        ("http://127.0.0.1:5555/", "port 5555 is not fetched (only 80 and 443)"),
        ("http://localhost:8100/", "port 8100 is not fetched (only 80 and 443)"),
        ("http://[::1]:6379/", "port 6379 is not fetched (only 80 and 443)"),
        ("file:///etc/passwd", "only http and https URLs are fetched, not 'file'"),
        ("gopher://example.com/", "only http and https URLs are fetched, not 'gopher'"),
    ],
)
def test_internal_addresses_and_other_schemes_are_refused(url, reason):
    with pytest.raises(FetchRefused) as refused:
        get(url)

    assert refused.value.reason == reason
    assert refused.value.permanent


def test_a_name_that_resolves_to_an_internal_address_is_refused(monkeypatch):
    monkeypatch.setattr(socket, "getaddrinfo", lambda *a, **k: [(2, 1, 6, "", ("10.0.0.5", 80))])

    with pytest.raises(FetchRefused) as refused:
        get("http://images.example.com/mug.png")

    assert refused.value.reason == "images.example.com resolves to an internal address"


def test_the_connection_goes_to_the_checked_address_without_a_second_lookup(server, monkeypatch):
    """A name that answers a public address to the check and 127.0.0.1 to the connect
    (DNS rebinding) cannot win: the fetcher connects to the address it checked."""
    port = int(server.split(":")[1])
    lookups = []

    def resolve(host, *args, **kwargs):
        lookups.append(host)
        return [(2, 1, 6, "", ("127.0.0.1", port))]

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    Handler.routes["/mug.png"] = answer(body=png())

    fetched = get(
        f"http://images.example.com:{port}/mug.png", allowed=[f"images.example.com:{port}"]
    )

    assert fetched.content == png()
    # The name once; then only the checked address, which the connect looks up as a literal.
    assert lookups == ["images.example.com", "127.0.0.1"]
    assert Handler.seen == [("/mug.png", f"images.example.com:{port}")]


def test_a_redirect_from_an_allowed_url_to_an_internal_one_is_refused(server):
    Handler.routes["/mug.png"] = answer(302, "text/plain", headers=[("Location", "/moved.png")])
    Handler.routes["/moved.png"] = answer(
        302, "text/plain", headers=[("Location", "http://127.0.0.1/admin/")]
    )

    with pytest.raises(FetchRefused) as refused:
        get(f"http://{server}/mug.png", allowed=[server])

    assert refused.value.reason == "127.0.0.1 is an internal address"
    assert [path for path, _ in Handler.seen] == ["/mug.png", "/moved.png"]


def test_a_redirect_to_another_internal_port_is_refused(server):
    Handler.routes["/mug.png"] = answer(
        301, "text/plain", headers=[("Location", "http://127.0.0.1:6379/")]
    )

    with pytest.raises(FetchRefused) as refused:
        get(f"http://{server}/mug.png", allowed=[server])

    assert refused.value.reason == "port 6379 is not fetched (only 80 and 443)"


def test_redirects_are_followed_three_times_at_most(server):
    for n in range(5):
        Handler.routes[f"/{n}"] = answer(302, "text/plain", headers=[("Location", f"/{n + 1}")])

    Handler.routes["/4"] = answer(body=png())

    assert get(f"http://{server}/1", allowed=[server]).content == png()  # 1 -> 2 -> 3 -> 4
    with pytest.raises(FetchRefused) as refused:
        get(f"http://{server}/0", allowed=[server])

    assert refused.value.reason == "more than 3 redirects"


def test_html_sent_as_image_html_with_a_script_is_not_an_image(server):
    Handler.routes["/index.html"] = answer(
        content_type="image/html", body=b"<html><script>alert(document.cookie)</script>"
    )
    fetched = get(f"http://{server}/index.html", allowed=[server])

    with pytest.raises(FetchRefused) as refused:
        image_normalize(fetched.content)

    assert refused.value.reason == "not an image (UnidentifiedImageError)"


def test_an_image_is_written_again_as_png(server):
    out = io.BytesIO()
    Image.new("RGB", (5, 2), (1, 2, 3)).save(out, format="JPEG")

    again = Image.open(io.BytesIO(image_normalize(out.getvalue())))

    assert (again.format, again.size) == ("PNG", (5, 2))


def test_an_image_with_too_many_pixels_is_refused():
    with pytest.raises(FetchRefused) as refused:
        image_normalize(png(size=(300, 200)), max_pixels=50_000)

    assert refused.value.reason == "300x200 is too many pixels"


def test_a_slow_drip_is_cut_at_the_deadline_not_after_each_read(server):
    """Each byte comes within any per-read timeout; the whole takes 30 s."""
    Handler.routes["/drip.png"] = drip

    with pytest.raises(FetchRefused) as refused:
        get(f"http://{server}/drip.png", allowed=[server])

    assert refused.value.reason == "took longer than 4 s"
    assert not refused.value.permanent


def test_a_declared_oversize_body_is_refused_before_reading(server):
    Handler.routes["/big.png"] = answer(body=b"x" * 2048)

    with pytest.raises(FetchRefused) as refused:
        get(f"http://{server}/big.png", allowed=[server], max_bytes=1024)

    assert refused.value.reason == "larger than 1024 bytes (2048 declared)"


def test_an_undeclared_oversize_body_is_cut_while_streaming(server):
    Handler.routes["/endless.png"] = chunked_forever

    with pytest.raises(FetchRefused) as refused:
        get(f"http://{server}/endless.png", allowed=[server], max_bytes=10_000)

    assert refused.value.reason == "larger than 10000 bytes"


@given(st.text())
def test_url_check_of_any_text_passes_or_refuses_and_never_errors_otherwise(text):
    try:
        url_check(text)
    except FetchRefused as refused:
        assert refused.reason


@given(
    scheme=st.sampled_from(["http", "https", "ftp", "", "HTTP", "javascript"]),
    userinfo=st.sampled_from(["", "user@", "a:b@", "@", ":@"]),
    host=st.one_of(
        st.ip_addresses().map(lambda a: f"[{a}]" if a.version == 6 else str(a)),
        st.from_regex(r"[a-z0-9.\-_%\[\]:]{0,30}", fullmatch=True),
    ),
    port=st.one_of(st.just(""), st.integers(-5, 70000).map(lambda p: f":{p}"), st.text(max_size=5)),
    path=st.text(max_size=20),
)
def test_url_check_of_url_shaped_input_never_errors_but_by_refusing(
    scheme, userinfo, host, port, path
):
    url = f"{scheme}://{userinfo}{host}{port}/{path}"
    try:
        parts = url_check(url)
    except FetchRefused as refused:
        assert refused.reason
    else:
        assert parts.scheme in ("http", "https")
        assert parts.port in (None, 80, 443)

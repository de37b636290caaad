import io
import threading
from datetime import timedelta
from hashlib import sha256
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.utils import timezone
from PIL import Image

from shop.assets import images_download_due
from shop.models import ProductImage
from tests.factories import product_create

pytestmark = pytest.mark.django_db


def _png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (3, 2), (10, 20, 30)).save(out, format="PNG")
    return out.getvalue()


PNG = _png()
ANSWERS = {
    "/mug.png": (200, "image/png", PNG),
    "/index.html": (200, "image/html", b"<html><script>alert(document.cookie)</script>"),
    "/missing.png": (404, "text/plain", b"no"),
    "/flaky.png": (503, "text/plain", b"later"),
    "/page.png": (200, "text/html", b"<html></html>"),
}


class Images(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        status, content_type, body = ANSWERS[self.path]
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def image_host(settings):
    """A local image server, the one internal address the safe fetcher is let reach."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), Images)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    settings.SAFE_FETCH_ALLOWED = [f"127.0.0.1:{server.server_address[1]}"]
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_images_are_downloaded_retried_with_backoff_then_marked_broken(image_host, settings):
    settings.PIPELINE_RETRY_DELAY_SCALE = 1
    product = product_create(sku="MUG-1")
    images = {
        name: ProductImage.objects.create(product=product, source_url=f"{image_host}{name}")
        for name in ANSWERS
    }
    now = timezone.now()

    first = images_download_due(now=now)

    assert first == {"downloaded": 1, "broken": 3, "failed": 1}
    ok = ProductImage.objects.get(pk=images["/mug.png"].pk)
    assert (ok.status, ok.file.name) == (
        "downloaded",
        f"products/{sha256(PNG).hexdigest()[:32]}.png",
    )
    assert Image.open(ok.file).getpixel((0, 0)) == (10, 20, 30)
    missing = ProductImage.objects.get(pk=images["/missing.png"].pk)
    assert (missing.status, missing.last_error) == ("broken", "HTTP 404")
    page = ProductImage.objects.get(pk=images["/page.png"].pk)
    assert (page.status, page.last_error) == ("broken", "not an image (UnidentifiedImageError)")
    flaky = ProductImage.objects.get(pk=images["/flaky.png"].pk)
    assert (flaky.status, flaky.attempts, flaky.last_error) == ("failed", 1, "HTTP 503")
    assert timedelta(minutes=4) < flaky.next_attempt_at - now < timedelta(minutes=6)

    assert images_download_due(now=now + timedelta(minutes=1)) == {}  # not due yet
    moment = now
    for _ in range(4):
        moment = ProductImage.objects.get(pk=flaky.pk).next_attempt_at
        images_download_due(now=moment)
    flaky.refresh_from_db()
    assert (flaky.status, flaky.attempts) == ("broken", 5)
    assert images_download_due(now=moment + timedelta(days=1)) == {}


def test_an_image_claimed_by_one_run_is_not_downloaded_by_another(image_host):
    image = ProductImage.objects.create(
        product=product_create(), source_url=f"{image_host}/mug.png"
    )
    now = timezone.now()
    ProductImage.objects.filter(pk=image.pk).update(next_attempt_at=now + timedelta(minutes=10))

    assert images_download_due(now=now) == {}
    image.refresh_from_db()
    assert (image.status, image.attempts) == ("pending", 0)


def test_html_with_a_script_sent_as_image_html_is_not_kept(image_host):
    """It was saved as products/...-index.html: stored XSS wherever media is served."""
    image = ProductImage.objects.create(
        product=product_create(), source_url=f"{image_host}/index.html"
    )

    assert images_download_due() == {"broken": 1}
    image.refresh_from_db()
    assert (image.status, image.file.name) == ("broken", "")
    assert image.last_error == "not an image (UnidentifiedImageError)"


def test_a_sku_with_dot_dot_slash_neither_escapes_the_folder_nor_aborts_the_job(image_host):
    evil = ProductImage.objects.create(
        product=product_create(sku="../../../etc/cron.d/x"), source_url=f"{image_host}/mug.png"
    )
    after = ProductImage.objects.create(
        product=product_create(), source_url=f"{image_host}/mug.png"
    )

    assert images_download_due() == {"downloaded": 2}
    evil.refresh_from_db()
    after.refresh_from_db()
    assert evil.file.name.startswith("products/") and ".." not in evil.file.name
    assert after.status == "downloaded"


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://169.254.169.254/latest/meta-data/", "169.254.169.254 is an internal address"),
        ("http://127.0.0.1:5555/api/workers", "port 5555 is not fetched (only 80 and 443)"),
        ("http://metadata.google.internal/", "metadata.google.internal is an internal address"),
    ],
)
def test_an_image_at_an_internal_address_is_marked_broken_and_the_job_goes_on(
    image_host, url, reason
):
    refused = ProductImage.objects.create(product=product_create(), source_url=url)
    fine = ProductImage.objects.create(product=product_create(), source_url=f"{image_host}/mug.png")

    assert images_download_due() == {"broken": 1, "downloaded": 1}
    refused.refresh_from_db()
    fine.refresh_from_db()
    assert (refused.status, refused.last_error, refused.file.name) == ("broken", reason, "")
    assert fine.status == "downloaded"

import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.utils import timezone

from shop.assets import images_download_due
from shop.models import ProductImage
from tests.factories import product_create

pytestmark = pytest.mark.django_db

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32
ANSWERS = {
    "/mug.png": (200, "image/png", PNG),
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
def image_host():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Images)
    threading.Thread(target=server.serve_forever, daemon=True).start()
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

    assert first == {"downloaded": 1, "broken": 2, "failed": 1}
    ok = ProductImage.objects.get(pk=images["/mug.png"].pk)
    assert (ok.status, ok.file.name) == ("downloaded", "products/MUG-1-mug.png")
    assert ok.file.read() == PNG
    missing = ProductImage.objects.get(pk=images["/missing.png"].pk)
    assert (missing.status, missing.last_error) == ("broken", "HTTP 404")
    page = ProductImage.objects.get(pk=images["/page.png"].pk)
    assert (page.status, page.last_error) == ("broken", "not an image (text/html)")
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

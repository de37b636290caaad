"""Product images given as URLs: downloaded in the background, retried with backoff,
then marked broken. A periodic job picks up every image that is due."""

from datetime import datetime, timedelta
from pathlib import PurePosixPath
from urllib.parse import urlparse

import httpx
from django.core.files.base import ContentFile
from django.utils import timezone

from orders.pipeline import RetryPolicy
from shop.models import ProductImage

DOWNLOAD_RETRY = RetryPolicy(delays=(300, 900, 3600, 6 * 3600))  # then broken
MAX_BYTES = 10 * 1024 * 1024
# A claimed image is not picked again before this; a download never takes this long.
CLAIM = timedelta(minutes=10)


class DownloadError(Exception):
    def __init__(self, message: str, *, permanent: bool) -> None:
        super().__init__(message)
        self.permanent = permanent


def image_fetch(url: str) -> tuple[bytes, str]:
    """Download an image; return (content, extension). Raise DownloadError."""
    try:
        with httpx.stream("GET", url, timeout=10, follow_redirects=True) as response:
            if response.status_code >= 400:
                # 4xx: the URL is wrong and stays wrong, except a timeout or a rate limit.
                permanent = response.status_code < 500 and response.status_code not in (408, 429)
                raise DownloadError(f"HTTP {response.status_code}", permanent=permanent)
            content_type = response.headers.get("content-type", "").split(";")[0].strip()
            if not content_type.startswith("image/"):
                raise DownloadError(f"not an image ({content_type or 'no type'})", permanent=True)
            content = bytearray()
            for chunk in response.iter_bytes():
                content += chunk
                if len(content) > MAX_BYTES:
                    raise DownloadError("larger than 10 MB", permanent=True)
    except httpx.HTTPError as exc:
        raise DownloadError(f"{exc.__class__.__name__}: {exc}", permanent=False) from exc
    return bytes(content), content_type.removeprefix("image/").replace("jpeg", "jpg")


def image_download(*, image: ProductImage, now: datetime) -> str:
    """Try one download; record the outcome (downloaded, failed with a next try, broken)."""
    image.attempts += 1
    try:
        content, extension = image_fetch(image.source_url)
    except DownloadError as exc:
        countdown = None if exc.permanent else DOWNLOAD_RETRY.countdown(image.attempts - 1)
        image.last_error = str(exc)[:1000]
        if countdown is None:
            image.status = ProductImage.Status.BROKEN
        else:
            image.status = ProductImage.Status.FAILED
            image.next_attempt_at = now + timedelta(seconds=countdown)
        image.save(update_fields=["attempts", "last_error", "status", "next_attempt_at"])
        return image.status
    stem = PurePosixPath(urlparse(image.source_url).path).stem or "image"
    image.file.save(f"{image.product.sku}-{stem}.{extension}", ContentFile(content), save=False)
    image.status = ProductImage.Status.DOWNLOADED
    image.downloaded_at = now
    image.last_error = ""
    image.save(update_fields=["attempts", "file", "status", "downloaded_at", "last_error"])
    return image.status


def images_download_due(*, now: datetime | None = None, limit: int = 200) -> dict[str, int]:
    """Download every image that is due; return how many ended in each status."""
    now = now or timezone.now()
    due = ProductImage.objects.filter(
        status__in=[ProductImage.Status.PENDING, ProductImage.Status.FAILED],
        next_attempt_at__lte=now,
    ).values_list("pk", "next_attempt_at")[:limit]
    outcomes: dict[str, int] = {}
    for pk, next_attempt_at in due:
        # Claim with a conditional update: of two workers, one downloads it.
        if ProductImage.objects.filter(pk=pk, next_attempt_at=next_attempt_at).update(
            next_attempt_at=now + CLAIM
        ):
            image = ProductImage.objects.select_related("product").get(pk=pk)
            status = image_download(image=image, now=now)
            outcomes[status] = outcomes.get(status, 0) + 1
    return outcomes

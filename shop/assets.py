"""Product images given as URLs: downloaded in the background, retried with backoff,
then marked broken. A periodic job picks up every image that is due."""

import hashlib
from datetime import datetime, timedelta

from django.conf import settings
from django.core.files.base import ContentFile

from engine.due_rows import DueRows
from engine.leases import Lease, lease_write
from kit.retry import RetryPolicy
from safefetch import FetchRefused, fetch, image_normalize
from shop.models import ProductImage

DOWNLOAD_RETRY = RetryPolicy(delays=(300, 900, 3600, 6 * 3600))  # then broken
MAX_BYTES = 10 * 1024 * 1024
# The whole download, not each read: a server dripping bytes cannot hold the bulk worker.
DEADLINE_S = 10


def image_fetch(url: str) -> bytes:
    """Download an image through the safe fetcher; return it as PNG. Raise FetchRefused."""
    fetched = fetch(
        url, max_bytes=MAX_BYTES, deadline_s=DEADLINE_S, allowed=settings.SAFE_FETCH_ALLOWED
    )
    return image_normalize(fetched.content)


def image_download(*, image: ProductImage, lease: Lease, now: datetime) -> str:
    """Try one download; record the outcome (downloaded, failed with a next try, broken)
    under the run's lease: a run that lost the image to another records nothing."""
    attempts = image.attempts + 1
    try:
        content = image_fetch(image.source_url)
    except FetchRefused as exc:
        countdown = None if exc.permanent else DOWNLOAD_RETRY.countdown(attempts - 1)
        outcome: dict = {"status": ProductImage.Status.BROKEN}
        if countdown is not None:
            outcome = {
                "status": ProductImage.Status.FAILED,
                "next_attempt_at": now + timedelta(seconds=countdown),
            }
        lease_write(
            lease, "image download", attempts=attempts, last_error=str(exc)[:1000], **outcome
        )
        return outcome["status"]
    # Named by what it holds: nothing a supplier wrote (a SKU with `../`) reaches a path.
    name = f"{hashlib.sha256(content).hexdigest()[:32]}.png"
    image.file.save(name, ContentFile(content), save=False)
    lease_write(
        lease,
        "image download",
        attempts=attempts,
        file=image.file.name,
        status=ProductImage.Status.DOWNLOADED,
        downloaded_at=now,
        last_error="",
    )
    return ProductImage.Status.DOWNLOADED


def images_download_due(*, now: datetime | None = None, limit: int = 200) -> dict[str, int]:
    """Download every image that is due; return how many ended in each status."""
    return DUE_IMAGES.run(now=now, limit=limit)


def _image_download_claimed(lease: Lease, now: datetime) -> str:
    image = ProductImage.objects.select_related("product").get(pk=lease.pk)
    return image_download(image=image, lease=lease, now=now)


# Its status says what became of the last try (a failed one waits for its next), so the
# claim writes only its lease; image_download counts the attempts.
DUE_IMAGES = DueRows(
    model=ProductImage,
    work=_image_download_claimed,
    waiting=(ProductImage.Status.PENDING, ProductImage.Status.FAILED),
    due_field="next_attempt_at",
    claim={},
)

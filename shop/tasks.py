from celery import shared_task
from django.db import transaction

from fulfillment.partners import PartnerUnavailable
from orders.locks import once_per_tick
from shop.assets import images_download_due
from shop.imports import import_job_refuse, import_job_run
from shop.stock import stock_sync_start
from shop.subscriptions import lifecycle_due_run

# The ERP's stock feed, when down, is asked again after these waits, then the job is refused.
FEED_RETRIES_S = (10, 60, 300)


# A few hundred rows per run at most; the next tick takes the rest.
@shared_task(name="shop.run_subscription_lifecycle", soft_time_limit=240, time_limit=280)
@once_per_tick("run_subscription_lifecycle", lease_s=240)
def run_subscription_lifecycle() -> int:
    """Idempotent: each due row is claimed with a conditional update and runs once."""
    return lifecycle_due_run()


# At most a couple of hundred downloads of 10 s each per run.
@shared_task(name="shop.retry_image_downloads", soft_time_limit=280, time_limit=300)
@once_per_tick("retry_image_downloads", lease_s=240)
def retry_image_downloads() -> dict:
    """Idempotent: each due image is claimed with a conditional update and tried once."""
    return images_download_due()


# A 100k-row file takes well under the limit; a killed run resumes where it stopped.
# Runs every bulk catalog job (import, price update, stock sync), not only imports.
@shared_task(
    name="shop.import_products", bind=True, soft_time_limit=1800, time_limit=1900, acks_late=True
)
def import_products(self, job_id: int) -> str:
    """Idempotent: resumes after the last committed batch; a finished job is left alone."""
    try:
        return import_job_run(job_id=job_id).status
    except PartnerUnavailable as exc:  # only the stock sync's ERP feed calls out
        if self.request.retries >= len(FEED_RETRIES_S):
            return import_job_refuse(
                job_id=job_id, reason=f"{exc} (tried {self.request.retries + 1} times)"
            ).status
        raise self.retry(exc=exc, countdown=FEED_RETRIES_S[self.request.retries]) from exc


# Only starts the job (a row and a message): the job itself runs as shop.import_products.
@shared_task(name="shop.sync_stock_from_erp", soft_time_limit=60, time_limit=90)
@once_per_tick("sync_stock_from_erp", lease_s=1800)
def sync_stock_from_erp() -> int:
    """Idempotent per tick (a lease): one stock sync job per tick, which resumes if killed."""
    with transaction.atomic():
        job = stock_sync_start()
        transaction.on_commit(lambda: import_products.delay(job.pk))
    return job.pk

from celery import shared_task

from bulkjobs.services import bulk_job_look_again
from engine.ticks import once_per_tick
from partners import PartnerUnavailable
from shop.assets import images_download_due
from shop.imports import catalog_job_create, catalog_job_refuse, catalog_job_run
from shop.models import CatalogJob
from shop.subscriptions import lifecycle_due_run

# The ERP's stock feed, when down, is asked again after these waits, then the job is refused.
FEED_RETRIES_S = (10, 60, 300)


# A few hundred rows per run at most; the next tick takes the rest.
@shared_task(name="shop.run_subscription_lifecycle", soft_time_limit=240, time_limit=280)
@once_per_tick("run_subscription_lifecycle", lease_s=240)
def run_subscription_lifecycle() -> int:
    """Idempotent: each due row is claimed (locked, skipped by other runs) and runs once."""
    return lifecycle_due_run()


# At most a couple of hundred downloads of 10 s each per run.
@shared_task(name="shop.retry_image_downloads", soft_time_limit=280, time_limit=300)
@once_per_tick("retry_image_downloads", lease_s=240)
def retry_image_downloads() -> dict:
    """Idempotent: each due image is claimed (locked, skipped by other runs) and tried once."""
    return images_download_due()


# A 100k-row file takes well under the limit; a killed run resumes where it stopped.
@shared_task(name="shop.run_catalog_job", bind=True, soft_time_limit=1800, time_limit=1900)
def run_catalog_job(self, job_id: int) -> str:
    """Idempotent: resumes after the last committed batch; a finished job is left alone, a
    held one looked at again after the lease."""
    return _catalog_job_run_or_retry(self, job_id)


# The task's name before issue 12: messages queued before a deploy still carry it.
# Remove once no bulk queue can hold one (a release later).
@shared_task(name="shop.import_products", bind=True, soft_time_limit=1800, time_limit=1900)
def import_products(self, job_id: int) -> str:
    """Idempotent: as run_catalog_job."""
    return _catalog_job_run_or_retry(self, job_id)


def _catalog_job_run_or_retry(task, job_id: int) -> str:
    try:
        job = catalog_job_run(job_id=job_id)
        if not job.is_finished:  # another run holds it: look again after its lease
            return bulk_job_look_again(task=task, job=job)
        return job.status
    except PartnerUnavailable as exc:  # only the stock sync's ERP feed calls out
        if task.request.retries >= len(FEED_RETRIES_S):
            return catalog_job_refuse(
                job_id=job_id, reason=f"{exc} (tried {task.request.retries + 1} times)"
            ).status
        raise task.retry(exc=exc, countdown=FEED_RETRIES_S[task.request.retries]) from exc


# Only starts the job (a row and a message): the job itself runs as shop.run_catalog_job.
@shared_task(name="shop.sync_stock_from_erp", soft_time_limit=60, time_limit=90)
@once_per_tick("sync_stock_from_erp", lease_s=1800)
def sync_stock_from_erp() -> int:
    """Idempotent per tick (a lease): one stock sync job per tick, which resumes if killed."""
    return catalog_job_create(kind=CatalogJob.Kind.STOCK).pk

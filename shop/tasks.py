from celery import shared_task

from orders.locks import once_per_tick
from shop.assets import images_download_due
from shop.imports import import_job_run
from shop.subscriptions import lifecycle_due_run


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
@shared_task(name="shop.import_products", soft_time_limit=1800, time_limit=1900, acks_late=True)
def import_products(job_id: int) -> str:
    """Idempotent: resumes after the last committed batch; a finished job is left alone."""
    return import_job_run(job_id=job_id).status

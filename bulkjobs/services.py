"""What every bulk job's run does with its row: claim it under a lease, so one live run
works on a job at a time (engine/leases.py), and write its progress and outcome fenced
by that lease, so a run that lost it changes nothing."""

from django.conf import settings
from django.db.models import Q

from bulkjobs.models import BulkJob
from engine.leases import Lease, lease_take


def bulk_job_claim(*, job: BulkJob) -> Lease | None:
    """Take the right to run this queued or running job; None while a live run holds it.
    A running job whose lease is over had a run that died or gave up: it resumes."""
    return lease_take(
        type(job), pk=job.pk, claimable=Q(status__in=BulkJob.ACTIVE), status="running"
    )


def bulk_job_look_again(*, task, job: BulkJob) -> str:
    """A run found the job held by another: send the task again to look once that lease
    could have lapsed, so a holder that died (on any machine) is taken over, and one that
    finishes is found finished. Return the job's status."""
    # A bare publish, not on_commit: called from the job's task once its run returned,
    # in no transaction (the claim's own statement has committed).
    task.apply_async((job.pk,), countdown=settings.STEP_LEASE_S)
    return job.status

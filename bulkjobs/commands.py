import time

from django.core.management.base import BaseCommand
from tqdm import tqdm


class BulkJobCommand(BaseCommand):
    """A command that creates one bulk job, then runs it here (`--inline`) or follows the
    worker's progress on the bulk queue with a bar, and prints the outcome.

    A kind fills in `job_create` (queue the job unless told to run it here), `job_run`
    (the service the task calls) and `job_report`. With `wait_flag` the command only
    follows the job when given `--wait`; otherwise it says the job is queued and returns.
    """

    unit = "row"
    wait_flag = False
    poll_s = 0.5

    def add_arguments(self, parser):
        self.add_job_arguments(parser)
        mode = parser.add_mutually_exclusive_group()
        mode.add_argument("--inline", action="store_true", help="run here, not on a worker")
        if self.wait_flag:
            mode.add_argument("--wait", action="store_true", help="follow the worker's progress")

    def add_job_arguments(self, parser) -> None:
        """The kind's own options."""

    def handle(self, *args, inline: bool, wait: bool = True, **options):
        job = self.job_create(queue=not inline, **options)
        if inline:
            job = self.job_run(job_id=job.pk)
        elif wait:
            job = self.job_follow(job)
        else:
            self.job_queued(job)
            return
        self.job_report(job)

    def job_create(self, *, queue: bool, **options):
        raise NotImplementedError

    def job_run(self, *, job_id: int):
        raise NotImplementedError

    def job_report(self, job) -> None:
        raise NotImplementedError

    def job_queued(self, job) -> None:
        self.stdout.write(f"{job} queued on the bulk queue")

    def job_follow(self, job):
        """Wait for a worker to finish the job, with a progress bar on stderr."""
        with tqdm(total=job.progress_total, unit=self.unit, file=self.stderr._out) as bar:
            while not job.is_finished:
                time.sleep(self.poll_s)
                job.refresh_from_db()
                bar.total = job.progress_total
                bar.update(job.rows_done - bar.n)
        return job

"""What the bulk catalog job commands share: create the job, run it on the bulk queue
(or here with --inline), follow its progress with a bar, print the outcome."""

import time
from pathlib import Path

from django.core.files import File
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from tqdm import tqdm

from shop.csvfiles import MalformedFile
from shop.imports import import_file_check, import_job_label, import_job_run
from shop.models import ImportJob
from shop.tasks import import_products

FINISHED = (ImportJob.Status.DONE, ImportJob.Status.REJECTED)


def file_checked(path: str, *, kind: str) -> Path:
    """The file, after refusing one that is missing or malformed before it is stored."""
    file = Path(path)
    if not file.is_file():
        raise CommandError(f"No such file: {file}")
    try:
        import_file_check(str(file), kind=kind)
    except MalformedFile as exc:
        raise CommandError(str(exc)) from exc
    return file


def job_start_and_follow(
    command: BaseCommand, *, job: ImportJob, file: Path | None, inline: bool
) -> ImportJob:
    with transaction.atomic():
        if file is None:
            job.save()
        else:
            with file.open("rb") as content:
                job.file.save(file.name, File(content), save=True)
        if not inline:
            transaction.on_commit(lambda: import_products.delay(job.pk))
    job = import_job_run(job_id=job.pk) if inline else _follow(command, job)
    verb = "imported" if job.kind == ImportJob.Kind.CATALOG else "applied"
    command.stdout.write(
        f"{import_job_label(job)} {job.pk} {job.status}: {job.rows_imported} {verb}, "
        f"{job.rows_rejected} rejected of {job.rows_total} rows"
    )
    if job.message:
        command.stdout.write(f"  {job.message}")
    for rejection in job.rejections.all()[:20]:
        command.stdout.write(f"  row {rejection.row} {rejection.sku}: {rejection.reason}")
    return job


def _follow(command: BaseCommand, job: ImportJob) -> ImportJob:
    with tqdm(total=job.rows_total or None, unit="row", file=command.stderr._out) as bar:
        while job.status not in FINISHED:
            time.sleep(0.5)
            job.refresh_from_db()
            bar.total = job.rows_total or None
            bar.update(job.rows_done - bar.n)
    return job

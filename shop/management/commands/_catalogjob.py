"""What the bulk catalog job commands share: refuse a bad file before it is stored, create
the job, run or follow it (bulkjobs.commands), print the outcome."""

import functools
from pathlib import Path

from django.core.files import File
from django.core.management.base import CommandError

from bulkjobs.commands import BulkJobCommand
from shop.csvfiles import MalformedFile
from shop.imports import (
    CatalogJobInvalid,
    catalog_file_check,
    catalog_job_create,
    catalog_job_label,
    catalog_job_run,
)
from shop.models import CatalogJob


class CatalogJobCommand(BulkJobCommand):
    """Fill in `job_options` (the create service's options, from the command's) and `kind`."""

    kind: str

    def job_options(self, *, file: str | None, **options) -> dict:
        return {}

    def job_create(self, *, queue: bool, file: str | None = None, **options) -> CatalogJob:
        fields = {"kind": self.kind, **self.job_options(file=file, **options)}
        path = _file_checked(file, kind=self.kind) if file else None
        try:
            if path is None:
                return catalog_job_create(queue=queue, **fields)
            with path.open("rb") as content:
                return catalog_job_create(queue=queue, file=File(content, name=path.name), **fields)
        except CatalogJobInvalid as exc:
            raise CommandError(str(exc)) from exc

    def job_run(self, *, job_id: int) -> CatalogJob:
        return catalog_job_run(job_id=job_id)

    def job_report(self, job: CatalogJob) -> None:
        verb = "imported" if job.kind == CatalogJob.Kind.CATALOG else "applied"
        self.stdout.write(
            f"{catalog_job_label(job)} {job.pk} {job.status}: {job.rows_applied} {verb}, "
            f"{job.rows_rejected} rejected of {job.rows_total} rows"
        )
        if job.message:
            self.stdout.write(f"  {job.message}")
        for rejection in job.rejections.all()[:20]:
            self.stdout.write(f"  row {rejection.row} {rejection.sku}: {rejection.reason}")


def _file_checked(path: str, *, kind: str) -> Path:
    """The file, after refusing one that is missing or malformed before it is stored."""
    file = Path(path)
    if not file.is_file():
        raise CommandError(f"No such file: {file}")
    try:
        catalog_file_check(functools.partial(file.open, "rb"), kind=kind)
    except MalformedFile as exc:
        raise CommandError(str(exc)) from exc
    return file

import time
from pathlib import Path

from django.core.files import File
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from tqdm import tqdm

from shop.imports import MalformedFile, import_file_check, import_job_run
from shop.models import ImportJob
from shop.tasks import import_products


class Command(BaseCommand):
    help = "Import a product CSV on the bulk queue and follow its progress."

    def add_arguments(self, parser):
        parser.add_argument("file")
        parser.add_argument("--inline", action="store_true", help="run here, not on a worker")

    def handle(self, *args, file: str, inline: bool, **options):
        path = Path(file)
        if not path.is_file():
            raise CommandError(f"No such file: {path}")
        try:
            total = import_file_check(str(path))  # refuse a malformed file before storing it
        except MalformedFile as exc:
            raise CommandError(str(exc)) from exc
        with transaction.atomic(), path.open("rb") as content:
            job = ImportJob(rows_total=total)
            job.file.save(path.name, File(content), save=True)
            if not inline:
                transaction.on_commit(lambda: import_products.delay(job.pk))
        if inline:
            job = import_job_run(job_id=job.pk)
        else:
            job = self._follow(job, total)
        self.stdout.write(
            f"import {job.pk} {job.status}: {job.rows_imported} imported, "
            f"{job.rows_rejected} rejected of {job.rows_total} rows"
        )
        for rejection in job.rejections.all()[:20]:
            self.stdout.write(f"  row {rejection.row} {rejection.sku}: {rejection.reason}")

    def _follow(self, job: ImportJob, total: int) -> ImportJob:
        with tqdm(total=total, unit="row", file=self.stderr._out) as bar:
            while job.status not in (ImportJob.Status.DONE, ImportJob.Status.REJECTED):
                time.sleep(0.5)
                job.refresh_from_db()
                bar.update(job.rows_done - bar.n)
        return job

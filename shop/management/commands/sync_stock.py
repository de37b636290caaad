from datetime import datetime

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from shop.management.commands._bulkjob import file_checked, job_start_and_follow
from shop.models import ImportJob


def count_time(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise CommandError(
            f"--as-of must be an ISO time such as 2026-11-23T06:00, got {text!r}"
        ) from exc
    return moment if timezone.is_aware(moment) else timezone.make_aware(moment)


class Command(BaseCommand):
    help = (
        "Sync stock on the bulk queue from a warehouse CSV (sku, on_hand) or the ERP's feed; "
        "units reserved by orders the warehouse does not know yet are kept back."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", nargs="?", help="CSV: sku, on_hand")
        parser.add_argument("--from-erp", action="store_true", help="read the ERP's stock feed")
        parser.add_argument("--as-of", help="when the warehouse counted the file (default: now)")
        parser.add_argument("--inline", action="store_true", help="run here, not on a worker")

    def handle(self, *args, file, from_erp, as_of, inline, **options):
        if bool(file) == from_erp:
            raise CommandError("Give either a CSV file (sku, on_hand) or --from-erp.")
        if as_of and from_erp:
            raise CommandError("--as-of is for a file; the ERP's feed says when it counted.")
        path = file_checked(file, kind=ImportJob.Kind.STOCK) if file else None
        job = ImportJob(
            kind=ImportJob.Kind.STOCK,
            as_of=None if from_erp else (count_time(as_of) if as_of else timezone.now()),
        )
        job_start_and_follow(self, job=job, file=path, inline=inline)

from decimal import Decimal, InvalidOperation

from django.core.management.base import BaseCommand, CommandError

from shop.imports import import_job_options_check
from shop.management.commands._bulkjob import file_checked, job_start_and_follow
from shop.models import ImportJob


def percentage(text: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation as exc:
        raise CommandError(f"--percent must be a number such as -10 or 7.5, got {text!r}") from exc
    if not value.is_finite() or value != round(value, 2):
        raise CommandError(f"--percent takes at most two decimals, got {text!r}")
    return value


class Command(BaseCommand):
    help = (
        "Change prices on the bulk queue, from a CSV (sku, price_cents) or by a percentage "
        "(optionally only for SKUs starting with a prefix), and follow the progress."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", nargs="?", help="CSV: sku, price_cents")
        parser.add_argument("--percent", help="change every price by this much, e.g. -10")
        parser.add_argument("--sku-prefix", default="", help="with --percent: only these SKUs")
        parser.add_argument("--inline", action="store_true", help="run here, not on a worker")

    def handle(self, *args, file, percent, sku_prefix, inline, **options):
        value = None if percent is None else percentage(percent)
        errors = import_job_options_check(
            kind=ImportJob.Kind.PRICES, has_file=bool(file), percent=value, sku_prefix=sku_prefix
        )
        if errors:
            raise CommandError(" ".join(errors.values()))
        path = file_checked(file, kind=ImportJob.Kind.PRICES) if file else None
        job = ImportJob(kind=ImportJob.Kind.PRICES, percent=value, sku_prefix=sku_prefix)
        job_start_and_follow(self, job=job, file=path, inline=inline)

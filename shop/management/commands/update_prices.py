from decimal import Decimal, InvalidOperation

from django.core.management.base import CommandError

from shop.management.commands._catalogjob import CatalogJobCommand
from shop.models import CatalogJob


def percentage(text: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation as exc:
        raise CommandError(f"--percent must be a number such as -10 or 7.5, got {text!r}") from exc
    if not value.is_finite() or value != round(value, 2):
        raise CommandError(f"--percent takes at most two decimals, got {text!r}")
    return value


class Command(CatalogJobCommand):
    help = (
        "Change prices on the bulk queue, from a CSV (sku, price_cents) or by a percentage "
        "(optionally only for SKUs starting with a prefix), and follow the progress."
    )
    kind = CatalogJob.Kind.PRICES

    def add_job_arguments(self, parser):
        parser.add_argument("file", nargs="?", help="CSV: sku, price_cents")
        parser.add_argument("--percent", help="change every price by this much, e.g. -10")
        parser.add_argument("--sku-prefix", default="", help="with --percent: only these SKUs")

    def job_options(self, *, file, percent, sku_prefix, **options) -> dict:
        return {
            "percent": None if percent is None else percentage(percent),
            "sku_prefix": sku_prefix,
        }

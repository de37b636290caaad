from django.core.management.base import CommandError

from kit.options import moment_parse, option_parse
from shop.management.commands._catalogjob import CatalogJobCommand
from shop.models import CatalogJob


class Command(CatalogJobCommand):
    help = (
        "Sync stock on the bulk queue from a warehouse CSV (sku, on_hand) or the ERP's feed; "
        "units reserved by orders the warehouse does not know yet are kept back."
    )
    kind = CatalogJob.Kind.STOCK

    def add_job_arguments(self, parser):
        parser.add_argument("file", nargs="?", help="CSV: sku, on_hand")
        parser.add_argument("--from-erp", action="store_true", help="read the ERP's stock feed")
        parser.add_argument(
            "--as-of",
            help="when the warehouse counted the file: 2026-11-23T06:00 (UTC unless it "
            "gives an offset; default: now)",
        )

    def job_options(self, *, file, from_erp, as_of, **options) -> dict:
        if bool(file) == from_erp:
            raise CommandError("Give either a CSV file (sku, on_hand) or --from-erp.")
        if as_of and from_erp:
            raise CommandError("--as-of is for a file; the ERP's feed says when it counted.")
        return {"as_of": option_parse("--as-of", moment_parse, as_of) if as_of else None}

from shop.management.commands._catalogjob import CatalogJobCommand
from shop.models import CatalogJob


class Command(CatalogJobCommand):
    help = "Import a product CSV on the bulk queue and follow its progress."
    kind = CatalogJob.Kind.CATALOG

    def add_job_arguments(self, parser):
        parser.add_argument(
            "file", help="CSV: sku, name, price_cents, stock[, description, image_url]"
        )

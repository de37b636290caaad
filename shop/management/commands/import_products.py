from django.core.management.base import BaseCommand

from shop.management.commands._bulkjob import file_checked, job_start_and_follow
from shop.models import ImportJob


class Command(BaseCommand):
    help = "Import a product CSV on the bulk queue and follow its progress."

    def add_arguments(self, parser):
        parser.add_argument(
            "file", help="CSV: sku, name, price_cents, stock[, description, image_url]"
        )
        parser.add_argument("--inline", action="store_true", help="run here, not on a worker")

    def handle(self, *args, file: str, inline: bool, **options):
        path = file_checked(file, kind=ImportJob.Kind.CATALOG)
        job_start_and_follow(
            self, job=ImportJob(kind=ImportJob.Kind.CATALOG), file=path, inline=inline
        )

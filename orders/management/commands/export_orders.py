import time

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from orders.models import OrderExport
from orders.services.exports import (
    ExportInvalid,
    export_filters_describe,
    order_export_create,
    order_export_run,
)

# Each export filter and the option that sets it, to name the option in an error.
OPTIONS = {
    "requester": "--requested-by",
    "ids": "--ids",
    "status": "--status",
    "channel": "--channel",
    "created_from": "--since",
    "created_to": "--until",
    "email_contains": "--email-contains",
    "sku": "--sku",
    "search": "--search",
}
FINISHED = (OrderExport.Status.DONE, OrderExport.Status.FAILED)


class Command(BaseCommand):
    help = (
        "Export the orders matching a filter to CSV on the bulk queue; the requester gets an "
        "email with a download link only they can open."
    )

    def add_arguments(self, parser):
        parser.add_argument("--requested-by", required=True, metavar="USERNAME")
        parser.add_argument("--status", nargs="+", help="order statuses, e.g. paid completed")
        parser.add_argument("--channel", nargs="+", help="web, api")
        parser.add_argument("--since", help="created at or after: 2026-05-01 or an ISO time")
        parser.add_argument("--until", help="created before: 2026-06-01 or an ISO time")
        parser.add_argument("--email-contains", help="part of the customer's email")
        parser.add_argument("--sku", help="orders with a line of this product SKU")
        parser.add_argument("--search", help="as the admin's search box")
        parser.add_argument("--ids", nargs="+", type=int, help="these order ids")
        mode = parser.add_mutually_exclusive_group()
        mode.add_argument("--wait", action="store_true", help="follow the worker's progress")
        mode.add_argument("--inline", action="store_true", help="run here, not on a worker")

    def handle(self, *args, requested_by: str, wait: bool, inline: bool, **options):
        user = get_user_model().objects.filter(username=requested_by).first()
        if user is None:
            raise CommandError(f"--requested-by: no user named {requested_by!r}")
        filters = {
            "ids": options["ids"],
            "status": options["status"],
            "channel": options["channel"],
            "created_from": options["since"],
            "created_to": options["until"],
            "email_contains": options["email_contains"],
            "sku": options["sku"],
            "search": options["search"],
        }
        try:
            export = order_export_create(
                requester=user, filters={k: v for k, v in filters.items() if v}, queue=not inline
            )
        except ExportInvalid as exc:
            raise CommandError(
                "; ".join(f"{OPTIONS[field]}: {why}" for field, why in exc.errors.items())
            ) from exc
        self.stdout.write(f"export {export.pk}: {export_filters_describe(export.filters)}")
        if inline:
            export = order_export_run(export_id=export.pk)
        elif wait:
            export = self._follow(export)
        else:
            self.stdout.write(
                f"queued on the bulk queue; {user.email} gets the download link by email "
                "(progress: Admin › Order exports)"
            )
            return
        if export.status == OrderExport.Status.FAILED:
            raise CommandError(f"export {export.pk} failed: {export.message}")
        self.stdout.write(
            f"export {export.pk} done: {export.rows_done} orders; link emailed to {user.email}, "
            f"valid until {export.expires_at:%Y-%m-%d %H:%M} UTC"
        )

    def _follow(self, export: OrderExport) -> OrderExport:
        with tqdm(unit="order", file=self.stderr._out) as bar:
            while export.status not in FINISHED:
                time.sleep(0.5)
                export.refresh_from_db()
                bar.total = export.rows_total
                bar.update(export.rows_done - bar.n)
        return export

from django.contrib.auth import get_user_model
from django.core.management.base import CommandError

from bulkjobs.commands import BulkJobCommand
from kit.options import SINCE_HELP, option_parse, since_parse
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


class Command(BulkJobCommand):
    help = (
        "Export the orders matching a filter to CSV on the bulk queue; the requester gets an "
        "email with a download link only they can open."
    )
    unit = "order"
    wait_flag = True

    def add_job_arguments(self, parser):
        parser.add_argument("--requested-by", required=True, metavar="USERNAME")
        parser.add_argument("--status", nargs="+", help="order statuses, e.g. paid completed")
        parser.add_argument("--channel", nargs="+", help="web, api")
        parser.add_argument("--since", help=f"created {SINCE_HELP}")
        parser.add_argument("--until", help="created before: 2026-06-01 or an ISO date-time")
        parser.add_argument("--email-contains", help="part of the customer's email")
        parser.add_argument("--sku", help="orders with a line of this product SKU")
        parser.add_argument("--search", help="as the admin's search box")
        parser.add_argument("--ids", nargs="+", type=int, help="these order ids")

    def job_create(self, *, queue: bool, requested_by: str, **options) -> OrderExport:
        user = get_user_model().objects.filter(username=requested_by).first()
        if user is None:
            raise CommandError(f"--requested-by: no user named {requested_by!r}")
        since = options["since"]
        filters = {
            "ids": options["ids"],
            "status": options["status"],
            "channel": options["channel"],
            "created_from": since and option_parse("--since", since_parse, since).isoformat(),
            "created_to": options["until"],
            "email_contains": options["email_contains"],
            "sku": options["sku"],
            "search": options["search"],
        }
        try:
            export = order_export_create(
                requester=user, filters={k: v for k, v in filters.items() if v}, queue=queue
            )
        except ExportInvalid as exc:
            raise CommandError(
                "; ".join(f"{OPTIONS[field]}: {why}" for field, why in exc.errors.items())
            ) from exc
        self.stdout.write(f"export {export.pk}: {export_filters_describe(export.filters)}")
        return export

    def job_run(self, *, job_id: int) -> OrderExport:
        return order_export_run(export_id=job_id)

    def job_queued(self, export: OrderExport) -> None:
        self.stdout.write(
            f"queued on the bulk queue; {export.requester.email} gets the download link by "
            "email (progress: Admin › Order exports)"
        )

    def job_report(self, export: OrderExport) -> None:
        if export.status == OrderExport.Status.FAILED:
            raise CommandError(f"export {export.pk} failed: {export.message}")
        self.stdout.write(
            f"export {export.pk} done: {export.rows_done} orders; link emailed to "
            f"{export.requester.email}, valid until {export.expires_at:%Y-%m-%d %H:%M} UTC"
        )

"""Move the private files stored before issue 15 (exports, invoices, labels, uploaded
import files, then in MEDIA_ROOT under guessable names) into the private storage under
random names, updating their rows. Run once after migrating; a second run finds nothing.

Each file is copied, its row pointed at the copy, and only then the original deleted: a
run killed half-way leaves at worst an unreferenced copy, never a row without its file.
"""

from django.core.files.storage import storages
from django.core.management.base import BaseCommand
from django.db.models import Model

from fulfillment.models import Invoice, Shipment
from orders.models import OrderExport
from shop.models import CatalogJob

PRIVATE_FIELDS: tuple[tuple[type[Model], str], ...] = (
    (Invoice, "file"),
    (Shipment, "label"),
    (OrderExport, "file"),
    (CatalogJob, "file"),
)


def private_files_move() -> dict[str, int]:
    """Move every private file still in the public storage; return how many per model."""
    public, private = storages["default"], storages["private"]
    moved: dict[str, int] = {}
    for model, name in PRIVATE_FIELDS:
        field = model._meta.get_field(name)
        label = model._meta.label
        moved[label] = 0
        for pk, old in model.objects.exclude(**{name: ""}).values_list("pk", name):
            if not public.exists(old):
                continue  # moved already (or lost before this ran)
            with public.open(old, "rb") as content:
                new = private.save(field.upload_to(None, old), content)
            model.objects.filter(pk=pk, **{name: old}).update(**{name: new})
            public.delete(old)
            moved[label] += 1
    return moved


class Command(BaseCommand):
    help = __doc__.splitlines()[0]

    def handle(self, *args, **options) -> None:
        for label, count in private_files_move().items():
            self.stdout.write(f"{label}: {count} moved to the private storage")

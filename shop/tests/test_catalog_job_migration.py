"""The rename of ImportJob to CatalogJob (issue 12) keeps every job and rejected row."""

from decimal import Decimal

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from shop.models import CatalogJob, RowRejection

BEFORE = [("shop", "0005_bulk_catalog_jobs")]


def migrate(targets=None):
    executor = MigrationExecutor(connection)
    executor.migrate(targets or executor.loader.graph.leaf_nodes())
    return executor.loader.project_state(targets).apps if targets else None


@pytest.mark.django_db(transaction=True)
def test_jobs_and_rejected_rows_of_the_previous_schema_are_found_after_the_rename():
    old = migrate(BEFORE)
    ImportJob, ImportRejection = (
        old.get_model("shop", "ImportJob"),
        old.get_model("shop", "ImportRejection"),
    )
    job = ImportJob.objects.create(
        kind="prices",
        percent=Decimal("-10"),
        status="done",
        rows_total=3,
        rows_done=3,
        rows_imported=2,
        rows_rejected=1,
        requested_by="ops@example.com",
    )
    ImportRejection.objects.create(job=job, row=3, sku="GONE", reason="unknown SKU")

    migrate()

    assert list(
        CatalogJob.objects.values_list(
            "pk", "kind", "percent", "status", "rows_done", "rows_applied", "rows_rejected"
        )
    ) == [(job.pk, "prices", Decimal("-10.00"), "done", 3, 2, 1)]
    assert list(RowRejection.objects.values_list("job_id", "row", "sku", "reason")) == [
        (job.pk, 3, "GONE", "unknown SKU")
    ]

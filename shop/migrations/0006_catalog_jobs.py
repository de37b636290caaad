# The bulk catalog job's names cover all three kinds (issue 12). Renames only: the tables
# are renamed in place (shop_importjob -> shop_catalogjob, shop_importrejection ->
# shop_rowrejection) and every row stays.

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("shop", "0005_bulk_catalog_jobs"),
        ("notifications", "0006_export_email"),
    ]

    operations = [
        migrations.RenameModel("ImportJob", "CatalogJob"),
        migrations.RenameModel("ImportRejection", "RowRejection"),
        migrations.RenameField("catalogjob", "rows_imported", "rows_applied"),
    ]

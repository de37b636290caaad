import os

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from shop.models import Product

CATALOG = [
    ("MUG-001", "Enamel camp mug", "Holds 350 ml of coffee, survives a campfire.", 1490),
    ("TEE-002", "Organic cotton tee", "Heavyweight, pre-shrunk, made to last.", 2900),
    ("BAG-003", "Canvas tote bag", "Carries a week of groceries.", 1990),
    ("NB-004", "Dot-grid notebook", "A5, 160 pages, lies flat.", 1250),
    ("PEN-005", "Brass pen", "Refillable, weighty, ages well.", 3900),
    ("SOCK-006", "Merino socks", "Warm, breathable, no itch.", 1800),
    ("CAP-007", "Six-panel cap", "Adjustable, washed cotton.", 2400),
    ("BTL-008", "Steel water bottle", "Keeps cold for 24 hours.", 3200),
]


class Command(BaseCommand):
    help = (
        "Create the demo catalog and the demo admin user when missing (idempotent; an "
        "existing user is left as it is). Refuses to run with SHOPFLOW_ENV=production."
    )

    def add_arguments(self, parser):
        parser.add_argument("--stock", type=int, default=10_000, help="units per product")

    def handle(self, *args, stock: int, **options):
        if settings.ENVIRONMENT == "production":
            raise CommandError(
                "seed_demo creates demo users with documented passwords: "
                "it does not run with SHOPFLOW_ENV=production."
            )
        for sku, name, description, price in CATALOG:
            Product.objects.update_or_create(
                sku=sku,
                defaults={
                    "name": name,
                    "description": description,
                    "price_cents": price,
                    "stock": stock,
                },
            )
        username = os.environ.get("SHOPFLOW_ADMIN_USER", "admin")
        password = os.environ.get("SHOPFLOW_ADMIN_PASSWORD", "shopflow-admin")
        self.stdout.write(f"catalog: {len(CATALOG)} products with {stock} units each")
        users = get_user_model().objects
        if users.filter(username=username).exists():
            # Its password may be the one an operator chose: never reset it to the documented one.
            self.stdout.write(f"admin user: {username} exists, left as it was")
            return
        users.create_superuser(username=username, email="admin@shopflow.example", password=password)
        self.stdout.write(f"admin user: {username} / {password}")

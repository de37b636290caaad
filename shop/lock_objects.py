"""The shop's row-locking querysets: Product rows, always by id (the lock order of the
whole shop is written in orders/lock_objects.py)."""

from django.db.models import QuerySet

from shop.models import Product


def products_for_update(*, skus) -> QuerySet[Product]:
    return Product.objects.select_for_update().filter(sku__in=list(skus)).order_by("pk")

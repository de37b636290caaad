from django.db.models import QuerySet

from shop.models import Product


def product_list() -> QuerySet[Product]:
    return Product.objects.filter(is_active=True).order_by("name")

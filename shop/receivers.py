from django.db.models import F
from django.dispatch import receiver

from orders.signals import order_stock_released
from shop.models import Product


@receiver(order_stock_released)
def release_order_stock(sender, order, **kwargs) -> None:
    # In the transaction that ends the order, Product rows by id (orders/lock_objects.py).
    for line in order.lines.order_by("product_id"):
        Product.objects.filter(pk=line.product_id).update(stock=F("stock") + line.quantity)

from django import template
from django.conf import settings

from kit.money import money_format

register = template.Library()


@register.filter
def money(cents: int, currency: str | None = None) -> str:
    return money_format(cents, currency or settings.SHOP_CURRENCY)

"""Checkout: validate a request, reserve stock, create the order, in one transaction."""

import hashlib
import json
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from orders.models import IdempotencyKey, Order
from orders.services.orders import order_create
from orders.signals import order_placed
from shop.models import Product

Errors = dict[str, list[str]]

MAX_ITEMS = 50
MAX_QUANTITY = 100
MAX_EMAIL = 254  # RFC 5321's limit on a path; Order.email is an EmailField(max_length=254)
ADDRESS_FIELDS = {
    "name": True,
    "line1": True,
    "line2": False,
    "city": True,
    "postal_code": True,
    "country": True,
}


class CheckoutError(Exception):
    """A checkout refused, with reasons per field; `status` is the HTTP answer."""

    status = 400

    def __init__(self, errors: Errors) -> None:
        super().__init__(errors)
        self.errors = errors


class OutOfStock(CheckoutError):
    status = 409


class IdempotencyKeyReused(CheckoutError):
    status = 422


@dataclass(frozen=True)
class CheckoutRequest:
    email: str
    items: dict[str, int]  # sku -> quantity, in the customer's order
    shipping_address: dict[str, str]
    payment_token: str

    def fingerprint(self) -> str:
        canonical = json.dumps(self.__dict__, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class CheckoutResult:
    order: Order
    created: bool  # False when an Idempotency-Key replayed an earlier checkout


UNSTORABLE = "Must be text without NUL characters or unpaired surrogates."


def storable(text: str) -> bool:
    """Whether a database can store the string: no NUL, valid UTF-8 (no lone surrogates)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return "\x00" not in text


def unstorable_fields(data: dict[str, Any]) -> list[str]:
    """The fields we would store whose text no database can hold. Other keys are ignored:
    they are never stored, and echoing a client's own key names back is no help."""
    candidates: list[tuple[str, Any]] = [
        ("email", data.get("email")),
        ("payment_token", data.get("payment_token")),
    ]
    items = data.get("items")
    if isinstance(items, list):
        candidates += [
            (f"items[{n}].sku", item.get("sku"))
            for n, item in enumerate(items)
            if isinstance(item, dict)
        ]
    address = data.get("shipping_address")
    if isinstance(address, dict):
        candidates += [(f"shipping_address.{f}", address.get(f)) for f in ADDRESS_FIELDS]
    return [path for path, value in candidates if isinstance(value, str) and not storable(value)]


def _required_string(value: Any, *, max_length: int) -> str | None:
    """Return the stripped string, or None when it is not a usable one."""
    if not isinstance(value, str) or not value.strip() or len(value) > max_length:
        return None
    return value.strip()


def checkout_parse(data: Any) -> CheckoutRequest:
    """Check a checkout body field by field; raise CheckoutError with every problem found."""
    if not isinstance(data, dict):
        raise CheckoutError({"body": ["Expected a JSON object."]})
    errors: Errors = {path: [UNSTORABLE] for path in unstorable_fields(data)}
    if errors:
        raise CheckoutError(errors)

    email = data.get("email")
    if email is None:
        errors["email"] = ["This field is required."]
    else:
        email = email.strip().lower() if isinstance(email, str) else ""
        try:
            validate_email(email)
        except ValidationError:
            errors["email"] = ["Enter a valid email address."]
        else:
            if len(email) > MAX_EMAIL:  # the validator allows 320; the column holds 254
                errors["email"] = [f"Must be at most {MAX_EMAIL} characters."]

    items = _items_parse(data.get("items"), errors)
    address = _address_parse(data.get("shipping_address"), errors)

    payment_token = data.get("payment_token")
    if payment_token is None:
        errors["payment_token"] = ["This field is required."]
    elif _required_string(payment_token, max_length=128) is None:
        errors["payment_token"] = ["Must be a non-empty string of at most 128 characters."]

    if errors:
        raise CheckoutError(errors)
    return CheckoutRequest(
        email=email,
        items=items,
        shipping_address=address,
        payment_token=payment_token.strip(),
    )


def _items_parse(items: Any, errors: Errors) -> dict[str, int]:
    if items is None:
        errors["items"] = ["This field is required."]
        return {}
    if not isinstance(items, list) or not items:
        errors["items"] = ["Must be a non-empty list."]
        return {}
    if len(items) > MAX_ITEMS:
        errors["items"] = [f"At most {MAX_ITEMS} items per order."]
        return {}
    parsed: dict[str, int] = {}
    for n, item in enumerate(items):
        where = f"items[{n}]"
        if not isinstance(item, dict):
            errors[where] = ["Must be an object with sku and quantity."]
            continue
        sku = _required_string(item.get("sku"), max_length=64)
        quantity = item.get("quantity")
        if sku is None:
            errors[f"{where}.sku"] = ["Must be a non-empty string of at most 64 characters."]
        elif sku in parsed:
            errors[f"{where}.sku"] = [f"Duplicate SKU '{sku}'; combine the quantities."]
        # bool is an int in Python; true is not a quantity.
        if (
            isinstance(quantity, bool)
            or not isinstance(quantity, int)
            or not 1 <= quantity <= MAX_QUANTITY
        ):
            errors[f"{where}.quantity"] = [f"Must be an integer between 1 and {MAX_QUANTITY}."]
        elif sku is not None and sku not in parsed:
            parsed[sku] = quantity
    return parsed


def _address_parse(address: Any, errors: Errors) -> dict[str, str]:
    if address is None:
        errors["shipping_address"] = ["This field is required."]
        return {}
    if not isinstance(address, dict):
        errors["shipping_address"] = ["Must be an object."]
        return {}
    parsed: dict[str, str] = {}
    for field, required in ADDRESS_FIELDS.items():
        where = f"shipping_address.{field}"
        value = address.get(field)
        if value is None or value == "":
            if required:
                errors[where] = ["This field is required."]
            continue
        text = _required_string(value, max_length=200)
        if text is None:
            errors[where] = ["Must be a string of at most 200 characters."]
        elif field == "country" and not (len(text) == 2 and text.isalpha()):
            errors[where] = ["Must be a two-letter ISO country code."]
        else:
            parsed[field] = text.upper() if field == "country" else text
    return parsed


def checkout_place(
    *,
    request: CheckoutRequest,
    idempotency_key: str | None = None,
    channel: str = Order.Channel.API,
) -> CheckoutResult:
    """Place an order: reserve stock, create it with its steps, dispatch after commit.

    With an idempotency key, a repeat (even a concurrent one) returns the first order.
    """
    if idempotency_key:
        replay = _checkout_replay(key=idempotency_key, request=request)
        if replay:
            return replay
    try:
        return _checkout_commit(request=request, idempotency_key=idempotency_key, channel=channel)
    except IntegrityError:
        # A concurrent request with the same key committed first.
        replay = idempotency_key and _checkout_replay(key=idempotency_key, request=request)
        if not replay:
            raise
        return replay


def idempotency_key_scoped(*, key: str, email: str) -> str:
    """The client's Idempotency-Key as stored: scoped to the order's email, so another
    client that sends the same (guessed) key first cannot block this checkout."""
    return hashlib.sha256(f"{email.casefold()}\n{key}".encode()).hexdigest()


def _checkout_replay(*, key: str, request: CheckoutRequest) -> CheckoutResult | None:
    # Keys stored before they were scoped are stored as sent; they are still honoured
    # until they expire (IDEMPOTENCY_KEY_TTL_HOURS after the release that scoped them).
    scoped = idempotency_key_scoped(key=key, email=request.email)
    stored = IdempotencyKey.objects.select_related("order").filter(key__in=(scoped, key)).first()
    if stored is None:
        return None
    if stored.fingerprint != request.fingerprint():
        raise IdempotencyKeyReused(
            {"Idempotency-Key": ["This key was already used for a different checkout."]}
        )
    return CheckoutResult(order=stored.order, created=False)


@transaction.atomic
def _checkout_commit(
    *, request: CheckoutRequest, idempotency_key: str | None, channel: str
) -> CheckoutResult:
    lines = stock_reserve(items=request.items)
    order = order_create(
        email=request.email,
        shipping_address=request.shipping_address,
        payment_token=request.payment_token,
        currency=settings.SHOP_CURRENCY,
        channel=channel,
        lines=lines,
    )
    if idempotency_key:
        IdempotencyKey.objects.create(
            key=idempotency_key_scoped(key=idempotency_key, email=request.email),
            fingerprint=request.fingerprint(),
            order=order,
            expires_at=timezone.now() + timedelta(hours=settings.IDEMPOTENCY_KEY_TTL_HOURS),
        )
    order_placed.send(sender=Order, order_id=order.pk)
    return CheckoutResult(order=order, created=True)


def stock_reserve(*, items: dict[str, int]) -> list[tuple[Product, int]]:
    """Take the units from stock with conditional updates; no oversell under concurrency.

    Rows are updated in id order so concurrent checkouts lock them in the same order.
    Call inside a transaction: a shortage raises and rolls back what was taken.
    """
    products = {p.sku: p for p in Product.objects.filter(sku__in=items, is_active=True)}
    positions = {sku: n for n, sku in enumerate(items)}
    unknown = {
        f"items[{positions[sku]}].sku": [f"Unknown SKU '{sku}'."]
        for sku in items
        if sku not in products
    }
    if unknown:
        raise CheckoutError(unknown)
    for product in sorted(products.values(), key=lambda p: p.pk):
        quantity = items[product.sku]
        taken = Product.objects.filter(pk=product.pk, stock__gte=quantity).update(
            stock=F("stock") - quantity
        )
        if not taken:
            left = Product.objects.values_list("stock", flat=True).get(pk=product.pk)
            raise OutOfStock(
                {
                    f"items[{positions[product.sku]}].quantity": [
                        f"Only {left} left of '{product.sku}'."
                    ]
                }
            )
    return [(products[sku], quantity) for sku, quantity in items.items()]

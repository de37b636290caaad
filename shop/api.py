"""The JSON API: checkout, order status, catalog."""

import json
import re

from django.http import HttpRequest, JsonResponse
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from kit.limits import RateLimited
from orders.selectors import order_cancel_key_check, order_get_by_token, order_status_payload
from orders.services.orders import OrderNotCancellable, order_cancel
from shop.limits import address_limit_hit, email_limit_hit, rate_limited_message
from shop.selectors import product_list
from shop.services import UNSTORABLE, CheckoutError, checkout_parse, checkout_place, storable

# Printable ASCII without spaces: what clients send (UUIDs, ULIDs, hashes).
IDEMPOTENCY_KEY = re.compile(r"[\x21-\x7e]{1,255}")


def errors_response(error: CheckoutError) -> JsonResponse:
    return JsonResponse({"errors": error.errors}, status=error.status)


def rate_limited_response(limited: RateLimited) -> JsonResponse:
    response = JsonResponse({"errors": {"rate_limit": [rate_limited_message(limited)]}}, status=429)
    response["Retry-After"] = str(limited.retry_after)
    return response


@csrf_exempt  # an API for integrators, not a browser form; no session cookie is used
@require_POST
def checkout(request: HttpRequest) -> JsonResponse:
    key = request.headers.get("Idempotency-Key")
    try:
        if key is not None and not IDEMPOTENCY_KEY.fullmatch(key):
            raise CheckoutError(
                {"Idempotency-Key": ["Must be 1 to 255 printable ASCII characters without spaces."]}
            )
        address_limit_hit(action="checkout", request=request)
        data = _json_body(request, empty=None)
        parsed = checkout_parse(data)
        email_limit_hit(action="checkout", email=parsed.email)
        result = checkout_place(request=parsed, idempotency_key=key)
    except CheckoutError as error:
        return errors_response(error)
    except RateLimited as limited:
        return rate_limited_response(limited)
    order = result.order
    response = JsonResponse(
        {
            "number": order.number,
            "token": order.token,
            "status": order.status,
            "status_url": request.build_absolute_uri(reverse("api-order", args=[order.token])),
        },
        status=201,
    )
    if not result.created:
        response["Idempotent-Replayed"] = "true"
    return response


NO_SUCH_ORDER = {"errors": {"token": ["No order with this token."]}}


def _json_body(request: HttpRequest, *, empty: object) -> object:
    if not request.body:
        return empty
    try:
        return json.loads(request.body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise CheckoutError({"body": [f"Invalid JSON: {exc}"]}) from exc
    except RecursionError as exc:
        raise CheckoutError({"body": ["Invalid JSON: nested too deeply."]}) from exc


@require_GET
def order_detail(request: HttpRequest, token: str) -> JsonResponse:
    order = order_get_by_token(token=token)
    if order is None:
        return JsonResponse(NO_SUCH_ORDER, status=404)
    return JsonResponse(order_status_payload(order=order))


NOT_JSON = {"body": ["Send a JSON object with Content-Type: application/json."]}
WRONG_CANCEL_KEY = {
    "cancel_key": ["The cancel key from the order's confirmation email is required."]
}


@csrf_exempt  # see checkout; a JSON content type also keeps browsers' simple requests out
@require_POST
def order_cancel_view(request: HttpRequest, token: str) -> JsonResponse:
    """Cancel the order with its cancel key (the token alone only reads it). Repeatable.

    Refused with 409 once fulfilment has begun (orders.services.orders.order_cancel).
    """
    try:
        # Before the lookup: guessing tokens counts too.
        address_limit_hit(action="cancel", request=request)
        order = order_get_by_token(token=token)
        if order is not None:
            email_limit_hit(action="cancel", email=order.email)
    except RateLimited as limited:
        return rate_limited_response(limited)
    if order is None:
        return JsonResponse(NO_SUCH_ORDER, status=404)
    # A cross-site form or a body-less or text/plain fetch is sent without a CORS
    # preflight; a JSON content type is not.
    if request.content_type != "application/json":
        return JsonResponse({"errors": NOT_JSON}, status=415)
    try:
        data = _json_body(request, empty=None)
        if not isinstance(data, dict):
            raise CheckoutError({"body": ["Expected a JSON object."]})
        key = data.get("cancel_key")
        if not isinstance(key, str) or not order_cancel_key_check(order=order, key=key):
            return JsonResponse({"errors": WRONG_CANCEL_KEY}, status=403)
        reason = data.get("reason", "")
        if not isinstance(reason, str) or len(reason) > 500:
            raise CheckoutError({"reason": ["Must be a string of at most 500 characters."]})
        if not storable(reason):
            raise CheckoutError({"reason": [UNSTORABLE]})
        order_cancel(order_id=order.pk, reason=reason)
    except CheckoutError as error:
        return errors_response(error)
    except OrderNotCancellable as exc:
        return JsonResponse({"errors": {"status": [str(exc)]}}, status=409)
    return JsonResponse(order_status_payload(order=order_get_by_token(token=token)))


@require_GET
def products(request: HttpRequest) -> JsonResponse:
    return JsonResponse(
        {
            "products": [
                {"sku": p.sku, "name": p.name, "price_cents": p.price_cents, "stock": p.stock}
                for p in product_list()
            ]
        }
    )

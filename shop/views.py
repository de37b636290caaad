"""The shop's pages: catalog, cart, checkout and the live order page."""

from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_POST

from kit.files import private_file_response, staff_only
from kit.limits import RateLimited
from orders.models import Order
from orders.selectors import order_get_by_token, order_status_payload
from shop.limits import address_limit_hit, email_limit_hit, rate_limited_message
from shop.models import CatalogJob
from shop.selectors import product_list
from shop.services import ADDRESS_FIELDS, CheckoutError, checkout_parse, checkout_place

CART = "cart"

PAYMENT_CHOICES = (
    ("tok_visa", "Test card that is approved"),
    ("tok_decline", "Test card that is declined"),
)


def _cart(request: HttpRequest) -> dict[str, int]:
    return request.session.get(CART, {})


def _cart_lines(cart: dict[str, int]) -> tuple[list[dict], int]:
    products = {p.sku: p for p in product_list().filter(sku__in=cart)}
    lines = [
        {"product": products[sku], "quantity": qty, "total_cents": products[sku].price_cents * qty}
        for sku, qty in cart.items()
        if sku in products
    ]
    return lines, sum(line["total_cents"] for line in lines)


@require_GET
def catalog(request: HttpRequest) -> HttpResponse:
    return render(
        request, "shop/catalog.html", {"products": product_list(), "cart": _cart(request)}
    )


@require_POST
def cart_update(request: HttpRequest) -> HttpResponse:
    """Set a product's quantity in the cart (0 removes it)."""
    cart = dict(_cart(request))
    sku = request.POST.get("sku", "")
    try:
        quantity = max(0, min(100, int(request.POST.get("quantity", "1"))))
    except ValueError:
        quantity = 1
    if request.POST.get("add"):
        quantity = min(100, cart.get(sku, 0) + quantity)
    if quantity and "\x00" not in sku and product_list().filter(sku=sku).exists():
        cart[sku] = quantity
    else:
        cart.pop(sku, None)
    request.session[CART] = cart
    target = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        target = "cart"  # no redirect off the shop (//evil.example)
    return redirect(target)


@require_GET
def cart(request: HttpRequest) -> HttpResponse:
    lines, total = _cart_lines(_cart(request))
    return render(request, "shop/cart.html", {"lines": lines, "total_cents": total})


def checkout(request: HttpRequest) -> HttpResponse:
    cart = _cart(request)
    lines, total = _cart_lines(cart)
    if not lines:
        return redirect("cart")
    form = {"payment_token": PAYMENT_CHOICES[0][0]}
    errors: dict[str, list[str]] = {}
    limited: RateLimited | None = None
    if request.method == "POST":
        form = request.POST.dict()
        data = {
            "email": form.get("email", ""),
            "items": [{"sku": sku, "quantity": qty} for sku, qty in cart.items()],
            "shipping_address": {f: form.get(f, "") for f in ADDRESS_FIELDS},
            "payment_token": form.get("payment_token", ""),
        }
        try:
            address_limit_hit(action="checkout", request=request)
            parsed = checkout_parse(data)
            email_limit_hit(action="checkout", email=parsed.email)
            result = checkout_place(request=parsed, channel=Order.Channel.WEB)
        except CheckoutError as error:
            errors = error.errors
        except RateLimited as exc:
            limited, errors = exc, {"rate_limit": [rate_limited_message(exc)]}
        else:
            request.session[CART] = {}
            return redirect("order", token=result.order.token)
    context = {
        "lines": lines,
        "total_cents": total,
        "form": form,
        "errors": errors,
        "other_errors": {
            k: v
            for k, v in errors.items()
            if not k.startswith("shipping_address") and k not in ("email", "payment_token")
        },
        "payment_choices": PAYMENT_CHOICES,
    }
    response = render(
        request, "shop/checkout.html", context, status=429 if limited else 400 if errors else 200
    )
    if limited:
        response["Retry-After"] = str(limited.retry_after)
    return response


@require_GET
def order(request: HttpRequest, token: str) -> HttpResponse:
    found = order_get_by_token(token=token)
    if found is None:
        raise Http404("No such order")
    return render(
        request, "shop/order.html", {"order": found, "payload": order_status_payload(order=found)}
    )


@require_GET
def invoice(request: HttpRequest, token: str) -> FileResponse:
    found = order_get_by_token(token=token)
    if found is None or not hasattr(found, "invoice"):
        raise Http404("No invoice yet")
    return private_file_response(
        found.invoice.file,
        filename=f"{found.number}.pdf",
        content_type="application/pdf",
        as_attachment=False,
    )


@require_GET
@staff_only("shop.view_catalogjob")
def catalog_job_file(request: HttpRequest, job_id: int) -> HttpResponse:
    """The file a catalog job was given, for staff who may view catalog jobs."""
    job = get_object_or_404(CatalogJob.objects.exclude(file=""), pk=job_id)
    return private_file_response(
        job.file, filename=f"catalog-job-{job.pk}.csv", content_type="text/csv"
    )

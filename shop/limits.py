"""The shop's abuse limits: checkouts and cancels per client address and per email
(kit/limits.py counts them in Redis; settings.RATE_LIMITS holds the numbers)."""

from django.http import HttpRequest

from kit.limits import RateLimited, client_address, limit_hit

_WHAT = {
    "checkout_address": "Too many checkouts from this address",
    "checkout_email": "Too many checkouts for this email address",
    "cancel_address": "Too many cancel requests from this address",
    "cancel_email": "Too many cancel requests for this order",
}


def address_limit_hit(*, action: str, request: HttpRequest) -> None:
    """Count one `action` ("checkout", "cancel") by the client's address; RateLimited past it."""
    limit_hit(scope=f"{action}_address", key=client_address(request))


def email_limit_hit(*, action: str, email: str) -> None:
    """Count one `action` for this email, from whichever address; RateLimited past it."""
    limit_hit(scope=f"{action}_email", key=email.strip().lower())


def rate_limited_message(limited: RateLimited) -> str:
    return f"{_WHAT[limited.scope]}; try again in {limited.retry_after} seconds."

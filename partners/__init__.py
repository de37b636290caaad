"""The four partners' clients, in one place: payment gateway, ERP, carrier, analytics.
Model-free: orders, fulfillment and the shop call them with plain values.

Each effectful call is named by the stem of the step that makes it (orders/pipeline.py)
and carries an Idempotency-Key made from the order and the step, so a retried or
redelivered step never repeats the effect at the partner. Errors are sorted three ways:
the partner refused (permanent, nothing happened), the call surely did not act
(transient: the connection was refused, the partner said 503), and the request went out
but no answer came (PartnerOutcomeUnknown: a read timeout, a dropped connection). An
unknown is settled by the call's look-up (`<call>_find`): what the partner did under
the key, None when it did nothing. Partners keep keys for a limited time
(PARTNERS[name]["key_retention_s"]; Stripe: 24 hours), then the same key acts again and
its look-up finds nothing; past it, the look-up asks by order instead (the partner's
list, which it keeps), so a retry days later adopts the effect instead of repeating it.
"""

import logging
import os
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar

import httpx
from django.conf import settings

from engine.breaker import breaker_record
from kit.errors import OutcomeUnknown, PermanentError, TransientError
from kit.transactions import in_transaction

logger = logging.getLogger(__name__)

T = TypeVar("T")


class PartnerUnavailable(TransientError):
    """The partner surely did not act: it could not be reached, or said it was unavailable
    or not now (503, 429, 408, 425); retry_after_s is when it asked us to come back."""

    def __init__(self, message: str, *, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


# "Not now" answers: the partner is there and did nothing with this request (408: it
# never got all of it; 425: too early; 429: too many; 503: unavailable). Retried, never a
# permanent refusal. 409 is not among them: see PartnerInProgress.
NOT_NOW = frozenset({408, 425, 429, 503})
IN_PROGRESS = 409


def retry_after(value: str | None) -> float | None:
    """Seconds a Retry-After header asks for (delta-seconds or an HTTP date), or None."""
    if not value:
        return None
    if value.strip().isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - datetime.now(UTC)).total_seconds()) if when.tzinfo else None


class PartnerOutcomeUnknown(OutcomeUnknown):
    """The request went out and no answer came, or a look-up could not say what it did."""


class PartnerInProgress(PartnerOutcomeUnknown):
    """409: a request under the same key is in progress. This one did nothing, but the
    earlier one may still act, so the step's effect stays unknown (its next attempt asks
    first, and an undo is made if it ends so); retry_after_s as PartnerUnavailable's."""

    def __init__(self, message: str, *, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


# Failures before the request was sent: the partner cannot have acted on it.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.UnsupportedProtocol)


class PartnerRejected(PermanentError):
    def __init__(self, partner: str, status: int, body: dict[str, Any]) -> None:
        self.status = status
        self.code = body.get("error", "rejected")
        super().__init__(
            f"{partner} refused ({status} {self.code}): {body.get('message', '')}".strip()
        )


class PartnerCallInTransaction(RuntimeError):
    """A partner call from inside a database transaction: it would hold the
    transaction's locks (on SQLite, the one write lock) for as long as the partner takes."""


_clients: dict[tuple[int, str], httpx.Client] = {}


def _transaction_check(partner: str) -> None:
    """Refuse (outside production: log there) a call made inside a transaction of ours."""
    if not in_transaction():
        return
    message = f"a call to {partner} from inside a database transaction"
    if settings.PARTNER_CALL_IN_TRANSACTION == "refuse":
        raise PartnerCallInTransaction(message)
    logger.error("%s: it holds the transaction's locks while it waits", message, stack_info=True)


def _http(partner: str) -> httpx.Client:
    """Return this process's pooled client for a partner (a fresh pool after fork), once
    it is sure no transaction of ours is open."""
    _transaction_check(partner)
    key = (os.getpid(), partner)
    if key not in _clients:
        config = settings.PARTNERS[partner]
        _clients[key] = httpx.Client(
            base_url=config["base_url"],
            timeout=httpx.Timeout(config["timeout_s"], connect=min(2.0, config["timeout_s"])),
            limits=httpx.Limits(max_keepalive_connections=10),
        )
    return _clients[key]


def partner_post(partner: str, path: str, *, payload: dict[str, Any], key: str) -> dict[str, Any]:
    """POST to a partner with an idempotency key; raise Transient/PermanentError on failure."""
    try:
        body = _post(partner, path, payload=payload, key=key)
    except (PartnerUnavailable, PartnerOutcomeUnknown):
        breaker_record(partner, ok=False)  # the one that opens it sends breaker_opened
        raise
    breaker_record(partner, ok=True)  # a 4xx too: the partner is up and answering
    return body


def partner_list(partner: str, path: str, **params: str) -> list[dict[str, Any]]:
    """What a partner lists under a path (`/captures` answers {"captures": [...]}),
    narrowed by params (order=<number>)."""
    name = path.rsplit("/", 1)[1]
    return _partner_get(partner, path, lambda body: body[name], what=f"list of {name}", **params)


def _partner_get(
    partner: str, path: str, read: Callable[[Any], T], *, what: str, **params: str
) -> T:
    """What `read` takes from a partner's JSON answer to a GET; PartnerUnavailable when
    it cannot be had (unreachable, an error status, a body not as described)."""
    try:
        response = _http(partner).get(path, params=params)
        response.raise_for_status()
        return read(response.json())
    except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
        raise PartnerUnavailable(f"{partner} {what} unavailable: {exc}") from exc


def payment_captures_list() -> list[dict[str, Any]]:
    """Every capture the gateway holds, with whether it was refunded (its daily report)."""
    return partner_list("payment", "/captures")


def erp_stock_list() -> tuple[str, list[dict[str, Any]]]:
    """The warehouse feed: when it was counted (ISO time) and units on hand per SKU."""
    return _partner_get(
        "erp", "/stock", lambda body: (body["as_of"], body["items"]), what="stock feed"
    )


def _post(partner: str, path: str, *, payload: dict[str, Any], key: str) -> dict[str, Any]:
    try:
        response = _http(partner).post(path, json=payload, headers={"Idempotency-Key": key})
    except _NOT_SENT as exc:
        raise PartnerUnavailable(f"{partner} unreachable: {exc.__class__.__name__} {exc}") from exc
    except httpx.TransportError as exc:  # read timeouts, dropped connections: it may have acted
        raise PartnerOutcomeUnknown(
            f"{partner} sent no answer: {exc.__class__.__name__} {exc}"
        ) from exc
    if response.status_code in NOT_NOW or response.status_code == IN_PROGRESS:
        error = PartnerInProgress if response.status_code == IN_PROGRESS else PartnerUnavailable
        raise error(
            f"{partner} answered {response.status_code}",
            retry_after_s=retry_after(response.headers.get("Retry-After")),
        )
    if response.status_code >= 500:  # a 500, or a gateway's 502/504: it may have acted
        raise PartnerOutcomeUnknown(f"{partner} answered {response.status_code}")
    try:
        body = response.json()
    except ValueError as exc:
        raise PartnerOutcomeUnknown(f"{partner} sent a body that is not JSON") from exc
    if response.status_code >= 400:
        raise PartnerRejected(partner, response.status_code, body)
    return body


# A key is taken as maybe forgotten this share of its retention early: our clock is not
# the partner's, and a call decided on just in time may reach it just too late.
KEY_RETENTION_MARGIN = 0.1


def key_retained(partner: str, *, age_s: float | None) -> bool:
    """Whether the partner surely still keeps a key first sent age_s seconds ago (None:
    not known, so maybe not)."""
    retention_s = settings.PARTNERS[partner]["key_retention_s"]
    return age_s is not None and age_s < retention_s * (1 - KEY_RETENTION_MARGIN)


def partner_find(
    partner: str,
    path: str,
    *,
    order_number: str,
    call: str,
    key_age_s: float | None,
    matches: Callable[[dict[str, Any]], bool],
) -> dict[str, Any] | None:
    """Ask a partner what the order's call (named as its step) under path did: the answer
    it got, None when it did nothing. Asked by the call's key while the partner surely
    keeps it (the call was first sent key_age_s ago), else by order: past its retention a
    key finds nothing, and of what the partner lists for the order only a record the call
    would have made (`matches`: its amount, not since undone) is the call's.
    Raises PartnerRejected when the partner refused that call (nothing happened),
    PartnerOutcomeUnknown when it cannot say (unreachable, no answer, the call still in
    progress, more than one record the call could have made)."""
    if key_retained(partner, age_s=key_age_s):
        return _find_by_key(partner, path, key=idempotency_key(order_number, call))
    logger.warning(
        "%s look-up by order: its key may be forgotten (first sent %s s ago)",
        call,
        "an unknown time" if key_age_s is None else f"{key_age_s:.0f}",
        extra={"order": order_number, "step": call, "partner": partner},
    )
    return _find_by_order(partner, path, order_number=order_number, matches=matches)


def _find_by_key(partner: str, path: str, *, key: str) -> dict[str, Any] | None:
    """The answer the partner keeps under the key, None if it did nothing under it."""
    try:
        response = _http(partner).get(f"{path}/by-key/{key}")
    except httpx.TransportError as exc:
        raise PartnerOutcomeUnknown(
            f"{partner} look-up of {key} unanswered: {exc.__class__.__name__} {exc}"
        ) from exc
    if response.status_code == 404:
        return None
    if response.status_code != 200:
        raise PartnerOutcomeUnknown(f"{partner} look-up of {key} answered {response.status_code}")
    try:
        found = response.json()
        status, body = found["status"], found["answer"]
    except (ValueError, KeyError, TypeError) as exc:
        raise PartnerOutcomeUnknown(f"{partner} look-up of {key} sent no answer") from exc
    if status >= 400:
        raise PartnerRejected(partner, status, body)
    return body


def _find_by_order(
    partner: str, path: str, *, order_number: str, matches: Callable[[dict[str, Any]], bool]
) -> dict[str, Any] | None:
    """The one record the partner lists for the order under path that the call would have
    made, None if it has none (it lists effects only: a refused call left nothing). The
    partner's filter is not trusted: a record of another order is not the order's."""
    try:
        made = partner_list(partner, path, order=order_number)
    except PartnerUnavailable as exc:  # it may have acted all the same: still unknown
        raise PartnerOutcomeUnknown(f"{partner} look-up of order {order_number}: {exc}") from exc
    candidates = [r for r in made if r.get("order") == order_number and matches(r)]
    if len(candidates) > 1:
        raise PartnerOutcomeUnknown(
            f"{partner} lists {len(candidates)} {path[1:]} for order {order_number} that the "
            "call could have made: which one is its own, only a person can tell"
        )
    return candidates[0] if candidates else None


def effect_find(find: Callable[..., T | None], **kwargs: Any) -> T | None:
    """What a call's look-up (`<call>_find`) found to undo: None also when the partner
    refused that call, which left nothing in place."""
    try:
        return find(**kwargs)
    except PartnerRejected:
        return None


# The step part of each call's idempotency key, by the call's name (its step's: the
# pipeline's, orders/pipeline.py): the name the step had when its calls were first sent.
KEY_STEMS = {
    "payment_capture": "payment",
    "payment_refund": "refund",
    "erp_sync": "erp_sync",
    "erp_cancel": "erp_cancel",
    "label_purchase": "label",
    "label_void": "label_void",
    "analytics_track": "analytics",
}


def idempotency_key(order_number: str, call: str) -> str:
    """The key of the order's call (named as its step): `<order number>:<stem>`, where
    <stem> is the name the step had when its calls were first sent (KEY_STEMS: `payment`,
    not `payment_capture`).

    Partners dedupe by key, so the key of a call never changes: a step retried after
    issue 12 renamed it must send the key its first attempt sent, or the gateway would
    charge the order again. A new step's key takes its name."""
    return f"{order_number}:{KEY_STEMS[call]}"


def payment_capture(
    *, order_number: str, amount_cents: int, currency: str, payment_token: str
) -> str:
    """Capture the payment and return the gateway's capture id."""
    body = partner_post(
        "payment",
        "/captures",
        payload={
            "order": order_number,
            "amount_cents": amount_cents,
            "currency": currency,
            "payment_token": payment_token,
        },
        key=idempotency_key(order_number, "payment_capture"),
    )
    return body["capture_id"]


def payment_capture_find(
    *, order_number: str, key_age_s: float | None, amount_cents: int
) -> str | None:
    """The capture id of the order's capture (of amount_cents, not refunded, when asked by
    order), None if the gateway captured nothing."""
    body = partner_find(
        "payment",
        "/captures",
        order_number=order_number,
        call="payment_capture",
        key_age_s=key_age_s,
        matches=lambda made: made.get("amount_cents") == amount_cents and not made["refunded"],
    )
    return body and body["capture_id"]


def erp_sync(
    *, order_number: str, lines: list[dict[str, Any]], total_cents: int
) -> tuple[str, str]:
    """Send the order to the ERP; return its reference and when the ERP took it (ISO time,
    on the ERP's clock: the clock its stock counts are on)."""
    body = partner_post(
        "erp",
        "/orders",
        payload={"order": order_number, "lines": lines, "total_cents": total_cents},
        key=idempotency_key(order_number, "erp_sync"),
    )
    return body["erp_reference"], body["acknowledged_at"]


def erp_sync_find(*, order_number: str, key_age_s: float | None) -> tuple[str, str] | None:
    """The ERP's reference of the order's sync and when it took it, None if the ERP has
    no order for it."""
    body = partner_find(
        "erp",
        "/orders",
        order_number=order_number,
        call="erp_sync",
        key_age_s=key_age_s,
        matches=lambda made: made.get("status") != "cancelled",
    )
    return body and (body["erp_reference"], body["acknowledged_at"])


def label_purchase(
    *, order_number: str, erp_reference: str, address: dict[str, Any]
) -> tuple[str, str]:
    """Buy a shipping label; return (tracking number, label in ZPL)."""
    body = partner_post(
        "carrier",
        "/labels",
        payload={"order": order_number, "erp_reference": erp_reference, "address": address},
        key=idempotency_key(order_number, "label_purchase"),
    )
    return body["tracking_number"], body["label_zpl"]


def label_purchase_find(*, order_number: str, key_age_s: float | None) -> tuple[str, str] | None:
    """(tracking number, label in ZPL) of the order's label, None if none was bought."""
    body = partner_find(
        "carrier",
        "/labels",
        order_number=order_number,
        call="label_purchase",
        key_age_s=key_age_s,
        matches=lambda made: made.get("status") != "voided",
    )
    return body and (body["tracking_number"], body["label_zpl"])


def analytics_track(*, order_number: str, event: str, properties: dict[str, Any]) -> None:
    partner_post(
        "analytics",
        "/events",
        payload={"event": event, "order": order_number, **properties},
        key=idempotency_key(order_number, "analytics_track"),
    )


def payment_refund(*, order_number: str, capture_id: str, amount_cents: int) -> str:
    """Refund a capture in full and return the refund id."""
    body = partner_post(
        "payment",
        "/refunds",
        payload={"order": order_number, "capture_id": capture_id, "amount_cents": amount_cents},
        key=idempotency_key(order_number, "payment_refund"),
    )
    return body["refund_id"]


def payment_refund_find(
    *, order_number: str, key_age_s: float | None, capture_id: str, amount_cents: int
) -> str | None:
    """The refund id of the order's refund (of capture_id in full, amount_cents, when asked
    by order), None if the gateway refunded nothing."""
    body = partner_find(
        "payment",
        "/refunds",
        order_number=order_number,
        call="payment_refund",
        key_age_s=key_age_s,
        matches=lambda made: (
            (made.get("capture_id"), made.get("amount_cents")) == (capture_id, amount_cents)
        ),
    )
    return body and body["refund_id"]


def erp_cancel(*, order_number: str, erp_reference: str) -> None:
    """Cancel the order's ERP order; one cancelled already (by an earlier cancel whose
    key the ERP no longer keeps) is as good."""
    _undo_post(
        "erp",
        f"/orders/{erp_reference}/cancel",
        key=idempotency_key(order_number, "erp_cancel"),
        done="already_cancelled",
    )


def label_void(*, order_number: str, tracking_number: str) -> None:
    """Void the order's label; one voided already is as good."""
    _undo_post(
        "carrier",
        f"/labels/{tracking_number}/void",
        key=idempotency_key(order_number, "label_void"),
        done="already_voided",
    )


def _undo_post(partner: str, path: str, *, key: str, done: str) -> None:
    """POST an undo that has no look-up: resent after the partner forgot its key, it is
    refused with the error code `done` ("already cancelled"), which is its success."""
    try:
        partner_post(partner, path, payload={}, key=key)
    except PartnerRejected as exc:
        if exc.code != done:
            raise
        logger.info("%s %s: %s", partner, path, exc, extra={"partner": partner})

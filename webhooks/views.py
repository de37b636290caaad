"""POST /webhooks/<partner>: verify, store, answer. Processing happens on the medium queue.

Verification comes before anything is read from the body: the size limit (the body must
be read to be verified, so only a bounded one is), then the signature and its timestamp.
Every verification failure is the same 401 with no detail; only a caller who signed the
body hears what is wrong with it (415, 400 with the field and reason). Nothing is stored
before all of it passed, and nothing answers 500: a store that fails (the database down)
answers 503, so the partner delivers again.
"""

import json
import logging
import time

from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from webhooks.events import EventInvalid, event_parse
from webhooks.services import inbox_event_store
from webhooks.signatures import SIGNATURE_HEADER, TIMESTAMP_HEADER, signature_verify

logger = logging.getLogger(__name__)
UNAUTHORIZED = {"errors": {"signature": ["Not accepted."]}}


def _errors(status: int, errors: dict[str, list[str]]) -> JsonResponse:
    return JsonResponse({"errors": errors}, status=status)


def _bounded_body(request: HttpRequest) -> bytes | None:
    """The raw body, or None when it is longer than WEBHOOK_MAX_BYTES (read no further)."""
    limit = settings.WEBHOOK_MAX_BYTES
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return None
    if declared > limit:
        return None
    body = request.read(limit + 1)
    return None if len(body) > limit else body


@csrf_exempt  # partners sign their requests; no cookie is used
@require_POST
def webhook(request: HttpRequest, partner: str) -> JsonResponse:
    try:
        return _webhook(request, partner)
    except Exception:
        logger.exception("webhook not stored", extra={"partner": partner})
        response = _errors(503, {"body": ["Not stored; deliver it again later."]})
        response["Retry-After"] = "30"
        return response


def _webhook(request: HttpRequest, partner: str) -> JsonResponse:
    body = _bounded_body(request)
    if body is None:
        limit = settings.WEBHOOK_MAX_BYTES
        return _errors(413, {"body": [f"At most {limit} bytes."]})
    verified = signature_verify(
        secrets=settings.WEBHOOK_SECRETS.get(partner, ()),
        timestamp=request.headers.get(TIMESTAMP_HEADER),
        signature=request.headers.get(SIGNATURE_HEADER),
        body=body,
        now=time.time(),
        tolerance_s=settings.WEBHOOK_TOLERANCE_S,
    )
    if not verified:
        return JsonResponse(UNAUTHORIZED, status=401)
    if request.content_type != "application/json":
        return _errors(415, {"Content-Type": ["Must be application/json."]})
    try:
        text = body.decode("utf-8")
        payload = json.loads(text)
    except (ValueError, RecursionError) as exc:
        return _errors(400, {"body": [f"Invalid JSON: {exc}"[:300]]})
    if "\x00" in text or "\\u0000" in text:
        return _errors(400, {"body": ["Must not contain NUL characters."]})
    try:
        event = event_parse(partner=partner, payload=payload)
    except EventInvalid as invalid:
        return _errors(400, invalid.errors)
    created = inbox_event_store(partner=partner, event=event, body=text, payload=payload)
    if not created:
        return JsonResponse({"id": event.event_id, "status": "duplicate"}, status=200)
    return JsonResponse({"id": event.event_id, "status": "accepted"}, status=202)

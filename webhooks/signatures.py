"""Partners sign each webhook: HMAC-SHA256 over `<timestamp>.<raw body>` with the secret
they share with us, hex, in `Webhook-Signature: v1=<hex>` beside `Webhook-Timestamp:
<unix seconds>`. Several `v1=` entries (comma-separated) are allowed, for a partner that
signs with two secrets while it rotates; we accept any of our secrets (two while we do)."""

import hashlib
import hmac
from collections.abc import Sequence

TIMESTAMP_HEADER = "Webhook-Timestamp"
SIGNATURE_HEADER = "Webhook-Signature"
SCHEME = "v1"


def signature_compute(*, secret: str, timestamp: str, body: bytes) -> str:
    return hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def signature_verify(
    *,
    secrets: Sequence[str],
    timestamp: str | None,
    signature: str | None,
    body: bytes,
    now: float,
    tolerance_s: float,
) -> bool:
    """Whether the body was signed by a holder of one of `secrets` within the replay
    window. Every failure is the same False: the caller learns nothing of which check."""
    if not secrets or not timestamp or not signature:
        return False
    if not (timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= 12):
        return False
    if abs(now - int(timestamp)) > tolerance_s:
        return False
    given = [
        value.encode()
        for scheme, _, value in (part.strip().partition("=") for part in signature.split(","))
        if scheme == SCHEME and value.isascii()
    ]
    expected = [
        signature_compute(secret=secret, timestamp=timestamp, body=body).encode()
        for secret in secrets
    ]
    # Every pair compared, in constant time each: no early exit tells which one matched.
    matches = [hmac.compare_digest(e, g) for e in expected for g in given[:4]]
    return any(matches)

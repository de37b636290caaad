"""How work can fail: the step runner (and any retrying caller) retries transient errors only."""


class StepError(Exception):
    """A step could not do its work."""


class TransientError(StepError):
    """Worth retrying: a timeout, a dropped connection, a 5xx."""


class PermanentError(StepError):
    """Retrying cannot help: a 4xx, a declined card, invalid data."""


class OutcomeUnknown(TransientError):
    """The request went out and no answer came (a read timeout after sending, a dropped
    connection): the effect may or may not be in place. Settled by asking the partner by
    the call's idempotency key, never taken for "nothing happened"."""

"""How work can fail: the step runner (and any retrying caller) retries transient errors only."""


class StepError(Exception):
    """A step could not do its work."""


class TransientError(StepError):
    """Worth retrying: a timeout, a dropped connection, a 5xx."""


class PermanentError(StepError):
    """Retrying cannot help: a 4xx, a declined card, invalid data."""

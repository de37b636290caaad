"""Structured logs: every line logged inside a task carries its order, step and attempt.

The task's context lives in a contextvar, bound when a task starts and when the runner
claims its step (the attempt), cleared when it ends (ops/receivers.py). A filter on
the handler copies it onto every record, whoever logs it (our code, Celery, httpx); the
formatters print it: JSON lines in production, readable text in development.
"""

import json
import logging
from collections.abc import Mapping
from contextvars import ContextVar
from datetime import UTC, datetime
from types import MappingProxyType

CONTEXT_FIELDS = ("order", "step", "attempt")
# What every LogRecord has; anything else on a record came from `extra=` or the context.
_RECORD_ATTRIBUTES = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime"}

_EMPTY: Mapping[str, object] = MappingProxyType({})
_context: ContextVar[Mapping[str, object]] = ContextVar("shopflow_log_context", default=_EMPTY)


def log_context_bind(**fields: object) -> None:
    """Add fields to the context of the task running in this process."""
    _context.set({**_context.get(), **fields})


def log_context_clear() -> None:
    _context.set(_EMPTY)


class TaskContextFilter(logging.Filter):
    """Copy the running task's context onto each record; an explicit `extra=` wins."""

    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in _context.get().items():
            if not hasattr(record, key):
                setattr(record, key, value)
        return True


def record_fields(record: logging.LogRecord) -> dict[str, object]:
    """The record's structured fields (context and extras) that JSON can carry as they are."""
    return {
        key: value
        for key, value in vars(record).items()
        if key not in _RECORD_ATTRIBUTES
        and (value is None or isinstance(value, str | int | float | bool))
    }


class TextFormatter(logging.Formatter):
    """The usual line, then `[order=... step=... attempt=...]` when a task's context is set."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        line = super().formatMessage(record)
        fields = record_fields(record)
        context = " ".join(f"{key}={fields[key]}" for key in CONTEXT_FIELDS if key in fields)
        return f"{line} [{context}]" if context else line


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, then every structured field."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            **record_fields(record),
        }
        if record.exc_info:
            entry["exc_info"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack_info"] = self.formatStack(record.stack_info)
        return json.dumps(entry, default=str)

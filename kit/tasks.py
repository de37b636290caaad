"""Tasks that were renamed keep running under the names they had, for one release."""

from collections.abc import Callable
from typing import Any

from celery import shared_task

from config.queues import RENAMED_TASKS


def renamed_shared_task(*, name: str, **options: Any) -> Callable[[Callable], Any]:
    """`shared_task(name=name, **options)`, also registered under each name the task had
    before (config/queues.py's RENAMED_TASKS) with the same function and options, so a
    message queued under an old name still runs it. Returns the task under its new name."""

    def register(function: Callable) -> Any:
        for old, new in RENAMED_TASKS.items():
            if new == name:
                shared_task(name=old, **options)(function)
        return shared_task(name=name, **options)(function)

    return register

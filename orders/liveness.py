"""Telling a dead worker process from a live one, for claims on steps and outbox emails.

A claim records "host:pid". On the same host a signal-0 probe answers at once; for
a claim made on another machine only time tells: past the longest a task may run
(its hard time limit), the claimer is gone.
"""

import os
import socket
from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone


def this_process() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def claimer_alive(
    claimed_by: str, *, claimed_at: datetime | None, now: datetime | None = None
) -> bool:
    host, _, pid = claimed_by.rpartition(":")
    if host == socket.gethostname() and pid.isdigit():
        if int(pid) == os.getpid():
            return False  # this process is asking, so its earlier claim is over
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True  # alive, owned by another user
        return True
    if claimed_at is None:
        return False
    now = now or timezone.now()
    return now < claimed_at + timedelta(seconds=settings.CELERY_TASK_TIME_LIMIT)

"""Telling a dead worker process from a live one, for claims on steps and outbox emails.

A claim records "host:pid", and "host:pid/thread" when a pool of threads runs the
task (the I/O-bound queues' workers: several steps run at once in one process). On
the same host a signal-0 probe answers at once, and in the same process the list of
live threads; for a claim made on another machine only time tells: past the longest
a task may run (its hard time limit), the claimer is gone.
"""

import os
import socket
import threading
from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone


def this_process() -> str:
    process = f"{socket.gethostname()}:{os.getpid()}"
    if threading.current_thread() is threading.main_thread():
        return process  # prefork pool processes run their task in their main thread
    return f"{process}/{threading.get_ident()}"


def claimer_alive(
    claimed_by: str, *, claimed_at: datetime | None, now: datetime | None = None
) -> bool:
    host, _, process = claimed_by.rpartition(":")
    pid, _, thread = process.partition("/")
    if host == socket.gethostname() and pid.isdigit():
        if int(pid) == os.getpid():
            # This process is asking. Its own thread's earlier claim is over (that
            # thread is asking again); another thread's lives while that thread does.
            return thread.isdigit() and _other_thread_alive(int(thread))
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


def _other_thread_alive(ident: int) -> bool:
    if ident == threading.get_ident():
        return False
    return any(thread.ident == ident for thread in threading.enumerate())

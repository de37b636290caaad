import logging

from celery.signals import worker_process_init, worker_ready
from django.dispatch import receiver

from engine.breaker import breaker_closed
from engine.dispatch import steps_deferred_wake
from engine.heartbeat import children_watch_start, heartbeat_start

logger = logging.getLogger(__name__)


@worker_process_init.connect  # a prefork pool process
@worker_ready.connect  # the worker's main process: a pool of threads runs in it
def lease_heartbeat_start(signal=None, **kwargs) -> None:
    heartbeat_start()
    if signal is worker_ready:
        children_watch_start()  # returns at once where there are no pool processes


@receiver(breaker_closed)
def deferred_steps_wake(sender, partner: str, **kwargs) -> None:
    # Inside the call that closed it: a failure here must not fail that call (the
    # deferred messages come anyway, only later).
    try:
        woken = steps_deferred_wake(partner=partner)
    except Exception:
        logger.exception("steps deferred by the %s breaker not woken", partner)
    else:
        logger.info("breaker for %s closed: %d deferred steps woken", partner, woken)

from celery.signals import worker_process_init, worker_ready

from engine.heartbeat import children_watch_start, heartbeat_start


@worker_process_init.connect  # a prefork pool process
@worker_ready.connect  # the worker's main process: a pool of threads runs in it
def lease_heartbeat_start(signal=None, **kwargs) -> None:
    heartbeat_start()
    if signal is worker_ready:
        children_watch_start()  # returns at once where there are no pool processes

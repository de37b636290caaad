from celery.signals import worker_process_init, worker_ready

from engine.heartbeat import heartbeat_start


@worker_process_init.connect  # a prefork pool process
@worker_ready.connect  # the worker's main process: a pool of threads runs in it
def lease_heartbeat_start(**kwargs) -> None:
    heartbeat_start()

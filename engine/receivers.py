from celery.signals import after_task_publish, worker_process_init, worker_ready

from engine.heartbeat import heartbeat_start
from engine.pipeline import pipeline
from engine.steps import step_mark_queued


@after_task_publish.connect
def mark_step_queued(sender: str | None = None, headers=None, body=None, **kwargs) -> None:
    spec = pipeline().by_task.get(sender or "")
    if spec is None:
        return
    args = body[0]  # task protocol 2: (args, kwargs, embed)
    step_mark_queued(subject_id=args[0], name=spec.name, task_id=headers["id"])


@worker_process_init.connect  # a prefork pool process
@worker_ready.connect  # the worker's main process: a pool of threads runs in it
def lease_heartbeat_start(**kwargs) -> None:
    heartbeat_start()

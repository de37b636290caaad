"""Events counted as they happen, in the Redis every worker shares: step retries and the
last success of each periodic job. Workers write them; /metrics and the dashboard read
them. A Redis restart starts the counts again, which Prometheus reads as a counter reset.
"""

import logging
import time
from datetime import UTC, datetime

import redis

from kit.redis import shared_redis

logger = logging.getLogger(__name__)
RETRIES_KEY = "shopflow:ops:step_retries"
JOB_SUCCESS_KEY = "shopflow:ops:job_last_success"


def step_retry_count(*, step: str) -> None:
    try:
        shared_redis().hincrby(RETRIES_KEY, step, 1)
    except redis.RedisError:
        # A count is not worth failing the step for.
        logger.warning("retry of %s not counted: Redis unavailable", step)


def job_success_record(*, task: str) -> None:
    try:
        shared_redis().hset(JOB_SUCCESS_KEY, task, time.time())
    except redis.RedisError:
        logger.warning("success of job %s not recorded: Redis unavailable", task)


def step_retry_totals() -> dict[str, int]:
    return {step.decode(): int(n) for step, n in shared_redis().hgetall(RETRIES_KEY).items()}


def job_last_successes() -> dict[str, datetime]:
    return {
        task.decode(): datetime.fromtimestamp(float(at), UTC)
        for task, at in shared_redis().hgetall(JOB_SUCCESS_KEY).items()
    }

"""The durable step engine: step records in the database drive work that runs on Celery.

A domain declares a `Pipeline` (engine/pipeline.py): its steps, what each waits for,
the concrete step-record model (a subclass of engine.models.StepRecord with a foreign
key to the domain's subject) and the hooks through which the engine tells it what
happened. The engine holds the mechanism: claims and outcome writes (steps.py), the
runner every step task goes through (runner.py), dispatch on commit (dispatch.py),
reconciliation of lost steps (reconcile.py), dead letters (dead_letters.py),
liveness of claimers (liveness.py) and per-partner circuit breakers (breaker.py).
It imports nothing from the domains that use it; settings.ENGINE_PIPELINE names the
pipeline it runs.
"""

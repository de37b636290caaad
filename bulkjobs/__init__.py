"""One lifecycle for bulk jobs (catalog imports, price updates, stock syncs, order exports).

A bulk job is a row that a worker on the bulk queue takes from queued to a finished
state, counting the rows it commits. This package holds what every kind shares and
knows nothing of the kinds: the abstract model (models.py), the claim of a job under a
lease (services.py), the admin mixin that shows progress and refreshes while a job runs
(admin.py), the management-command base that creates a job and runs it here (--inline)
or follows it with a progress bar (commands.py). Their date and duration options are
read by kit/options.py. The domain apps (shop, orders) use it; it imports none of them.
"""

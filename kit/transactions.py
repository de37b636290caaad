from django.db import transaction


def in_transaction() -> bool:
    """Whether a transaction of ours is open on the default connection. The transactions
    Django's TestCase wraps a test in never commit; like atomic(durable=True), they do not
    count, so a test runs as production does."""
    connection = transaction.get_connection()
    return any(not block._from_testcase for block in connection.atomic_blocks)

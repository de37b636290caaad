from django.dispatch import Signal

# Sent inside the checkout transaction with order_id; receivers act after commit.
order_placed = Signal()
# Sent with order= inside the transaction that ends an order (its row locked), once:
# the shop gives the order's units back to stock.
order_stock_released = Signal()
# Sent by the daily cleanup with now=; each receiver returns {what: queryset} of rows of
# its own app past their retention, which the cleanup deletes in batches (webhooks/).
cleanup_targets = Signal()

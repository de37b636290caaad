from django.dispatch import Signal

# Sent inside the checkout transaction with order_id; receivers act after commit.
order_placed = Signal()

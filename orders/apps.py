from django.apps import AppConfig


class OrdersConfig(AppConfig):
    name = "orders"

    def ready(self) -> None:
        from orders import receivers  # noqa: F401  (connects the signal receivers)
        from orders.ops import receivers as ops_receivers  # noqa: F401  (logs, counters)

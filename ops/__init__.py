"""The operations surface: /metrics, /healthz and /readyz, the admin dashboard, task logs."""

"""Model-free helpers every package may use, and which import none of them: the shared
Redis client, retry policies, error kinds, task log context, money formatting. Nothing
here knows an order, a step record or a partner."""

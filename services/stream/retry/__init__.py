"""The retry worker: one agent per retry tier (clicks.retry.1s, .10s, .60s)."""

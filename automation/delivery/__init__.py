"""The delivery layer: outbox, transports, retries (see docs/delivery.md once built)."""

"""``deliver_outbox``: one delivery pass over due outbox messages (for cron users)."""

from automation.delivery.commands import Command  # noqa: F401

"""Housekeeping: how long a tenant's history is kept, and the scheduler's heartbeat."""

from django.conf import settings
from django.core.validators import MinValueValidator
from django.db import models
from django.utils import timezone

from csplatform.tenancy import TenantOwnedModel

_DAYS = {"null": True, "blank": True, "validators": [MinValueValidator(1)]}


class RetentionPolicy(TenantOwnedModel):
    """A tenant's retention, in days; an empty field means the platform default (``RETENTION_DEFAULTS``).
    ``automation.retention.purge_history`` deletes what is older, never pending work."""

    events_days = models.PositiveIntegerField(**_DAYS, help_text="Processed events (default 30).")
    runs_days = models.PositiveIntegerField(**_DAYS, help_text="Finished runs and their steps (default 180).")
    delivered_messages_days = models.PositiveIntegerField(**_DAYS, help_text="Delivered outbox messages (default 30).")
    dead_messages_days = models.PositiveIntegerField(**_DAYS, help_text="Dead outbox messages (default 90).")
    audit_log_days = models.PositiveIntegerField(**_DAYS, help_text="Audit log entries (default 730).")
    updated_at = models.DateTimeField(auto_now=True)

    KEYS = ("events", "runs", "delivered_messages", "dead_messages", "audit_log")

    class Meta:
        verbose_name = verbose_name_plural = "retention policy"
        constraints = [models.UniqueConstraint(fields=["tenant"], name="retention_policy_once_per_tenant")]

    def __str__(self) -> str:
        return ", ".join(f"{key} {days} d" for key, days in self.effective().items())

    def effective(self) -> dict[str, int]:
        """Days kept for each kind of history: this policy's value, else the platform default."""
        return {key: getattr(self, f"{key}_days") or settings.RETENTION_DEFAULTS[key] for key in self.KEYS}


class Heartbeat(models.Model):
    """The last time a clock ran: ``scheduler`` is written by beat's heartbeat task (so beat and a worker are
    alive) and by every ``tick`` (cron, the embedded loop). Read by ``/readyz`` and ``/metrics``."""

    name = models.CharField(max_length=64, primary_key=True)
    beat_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"{self.name} at {self.beat_at:%Y-%m-%d %H:%M:%S}"

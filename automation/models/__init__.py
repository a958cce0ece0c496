from .outbox import EmailTemplate, IntegrationCredential, Outbox, WebhookSecret
from .rules import Event, Run, RunStep, ScheduledSlot, Workflow

__all__ = ["EmailTemplate", "Event", "IntegrationCredential", "Outbox", "Run", "RunStep", "ScheduledSlot",
           "WebhookSecret", "Workflow"]

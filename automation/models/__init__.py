from .outbox import EmailTemplate, IntegrationCredential, Outbox, WebhookEndpoint, WebhookSecret
from .rules import Event, Run, RunStep, ScheduledSlot, Workflow, WorkflowVersion

__all__ = ["EmailTemplate", "Event", "IntegrationCredential", "Outbox", "Run", "RunStep", "ScheduledSlot",
           "WebhookEndpoint", "WebhookSecret", "Workflow", "WorkflowVersion"]

from .housekeeping import Heartbeat, RetentionPolicy
from .rules import Event, Run, RunStep, ScheduledSlot, Workflow, WorkflowVersion

__all__ = ["Event", "Heartbeat", "RetentionPolicy", "Run", "RunStep", "ScheduledSlot", "Workflow", "WorkflowVersion"]

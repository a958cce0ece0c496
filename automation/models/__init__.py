from .rules import Event, Run, RunStep, ScheduledSlot, Workflow, WorkflowVersion

__all__ = ["Event", "Run", "RunStep", "ScheduledSlot", "Workflow", "WorkflowVersion"]

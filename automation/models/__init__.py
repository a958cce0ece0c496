from .rules import Event, Run, RunStep, ScheduledSlot, Workflow

__all__ = ["Event", "Run", "RunStep", "ScheduledSlot", "Workflow"]

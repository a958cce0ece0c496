"""What a rule that keeps failing does to the people who own it.

* After ``AUTOMATION_FAILING_RULE_TASK_AFTER`` (3) failed automatic runs in a row, one open task for the
  rule's owner (its creator, else the tenant admins) names the rule and its last error: a run-time failure
  (a credential removed, a contact without an email) reaches a person, not only the run history. While that
  task is open no second one is added.
* After ``failure_threshold`` failed runs in a row the circuit breaker pauses the rule and tells the tenant
  admins (the rule must be fixed and activated again).

Manual runs (a CSM trying a rule) do not count. The batch's own runs are not on disk yet: they are read from
memory (``Batch.outcomes``).
"""

from __future__ import annotations

from django.conf import settings

from accounts.models import Membership, Role, Task

from . import rule_index
from .models import Run, Workflow


def _last_outcomes(rule: Workflow, batch, n: int) -> list[str]:
    last = batch.outcomes(rule.pk)[:n]
    if len(last) < n:
        last += list(Run.objects.for_tenant(rule.tenant_id).filter(
            workflow=rule, manual=False, status__in=[Run.Status.SUCCESS, Run.Status.FAILED])
            .order_by("-created_at", "-id").values_list("status", flat=True)[:n - len(last)])
    return last


def _failed_in_a_row(last: list[str], n: int) -> bool:
    return bool(n) and len(last) >= n and all(status == Run.Status.FAILED for status in last[:n])


def _admins(rule: Workflow):
    return [m.user for m in Membership.objects.filter(tenant_id=rule.tenant_id, role=Role.TENANT_ADMIN)
            .select_related("user")]


def after_failure(rule: Workflow, run: Run, batch) -> None:
    """Called when an automatic run of ``rule`` failed (``run`` is it, not on disk yet)."""
    task_after = settings.AUTOMATION_FAILING_RULE_TASK_AFTER
    last = _last_outcomes(rule, batch, max(rule.failure_threshold or 0, task_after))
    if _failed_in_a_row(last, rule.failure_threshold):
        _pause(rule, batch)
    elif _failed_in_a_row(last, task_after):
        _tell_owner(rule, run, task_after)


def _tell_owner(rule: Workflow, run: Run, n: int) -> None:
    source = f"workflow:{rule.pk}:failing"
    tasks = Task.objects.for_tenant(rule.tenant_id)
    if tasks.filter(source=source, status__in=Task.OPEN_STATUSES).exists():
        return
    still_member = rule.created_by_id and Membership.objects.filter(tenant_id=rule.tenant_id,
                                                                      user_id=rule.created_by_id).exists()
    owners = [rule.created_by] if still_member else _admins(rule)
    for owner in owners:
        tasks.create(tenant_id=rule.tenant_id, assignee=owner, priority=Task.Priority.HIGH, source=source,
                     title=f"Automation failing: '{rule.name}' failed {n} times in a row",
                     description=f"Last error: {run.error or 'see the run history'}. Fix the rule or what it "
                                 f"relies on; this task closes nothing by itself.")


def _pause(rule: Workflow, batch) -> None:
    Workflow.objects.filter(pk=rule.pk).update(status=Workflow.Status.PAUSED)
    rule.status = Workflow.Status.PAUSED
    batch.paused.add(rule.pk)  # later events of the same batch leave it alone
    rule_index.invalidate(rule.tenant_id, memo=batch.rule_index)
    for admin in _admins(rule):
        Task.objects.create(
            tenant_id=rule.tenant_id, assignee=admin, priority=Task.Priority.HIGH, source=f"workflow:{rule.pk}",
            title=f"Automation paused: '{rule.name}' failed {rule.failure_threshold} times in a row",
            description="The circuit breaker paused this rule. Check its latest runs, fix it, then activate it again.",
        )

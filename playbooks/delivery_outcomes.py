"""A SuccessPlay's message that died: the account owner gets a task (``automation.delivery_outcomes``).

The execution itself needs no write: it reads ``delivery_failed`` while its run has a dead message, and
``completed`` again once a re-queued message gets through (``api.serializers``, ``admin``). Connected to
``delivery.signals.outbox_message_finished`` in ``playbooks.signals``; only dead messages that name a run
cost a query.
"""

from __future__ import annotations

from automation.delivery_outcomes import dead_delivery_task, dead_message_text

from .models import PlaybookExecution


def on_message_finished(sender, message, status, **kwargs) -> list:
    """Tell the owner of the account a SuccessPlay's dead message was for; returns the tasks created."""
    if status != "dead" or not message.run_id:
        return []
    execution = (PlaybookExecution.objects.for_tenant(message.tenant_id)
                 .filter(run_id=message.run_id, playbook__isnull=False).select_related("playbook", "account").first())
    if execution is None:
        return []
    play, account = execution.playbook, execution.account
    return dead_delivery_task(
        tenant_id=message.tenant_id, account=account, key=f"successplay:{play.pk}",
        title=f"Delivery failed: SuccessPlay '{play.name}' for {account.name}",
        description=f"The play ran for {account.name} on {execution.started_at:%Y-%m-%d %H:%M} UTC, but "
                    f"{dead_message_text(message)}")

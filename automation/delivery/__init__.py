"""The delivery layer: outbox, transports, retries, signing, email templates (see docs/delivery.md).

Imported by ``automation.apps.AutomationConfig.ready``: registers the transports, the celery tasks,
the payloads' health-score receiver, the periodic pass with ``automation.scheduling``'s due work (``tick``) and the
beat entry with ``automation.periodic``.
"""

from django.conf import settings

from . import payloads, services, tasks, transports  # noqa: F401


def _register_periodic_work() -> None:
    try:
        from automation.scheduling import register_due_work
    except ImportError:  # scheduling not built: the beat task and the command still work
        pass
    else:
        @register_due_work("automation.deliver_outbox")
        def deliver_outbox_due(*, now):
            return services.deliver_outbox_pass(now=now, budget=settings.OUTBOX_PASS_BUDGET)

    try:
        from automation.periodic import register_periodic_task
    except ImportError:
        return
    register_periodic_task(
        "automation: deliver outbox", "automation.delivery.deliver_outbox", every_seconds=settings.OUTBOX_PASS_EVERY,
        expire_seconds=max(settings.OUTBOX_PASS_EVERY * 2, 30),
        description="Delivers due outbox messages (retries, delayed sends, lost dispatches) and re-claims "
                    "messages stuck in sending (automation/delivery/services.py).")


_register_periodic_work()

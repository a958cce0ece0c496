"""Link outbox messages to the run step that wrote them.

The engine saves a ``RunStep`` after its action ran, so the action cannot point its messages at the
step; it marks the run instead (``services.runs_awaiting_step``) and, when the step is saved, its
messages get their ``run_step``. Steps of runs that wrote no message cost nothing.
"""

from django.db.models.signals import post_save
from django.dispatch import receiver

from automation.models import Outbox, RunStep

from .services import runs_awaiting_step


@receiver(post_save, sender=RunStep, dispatch_uid="automation.delivery.link_outbox_to_step")
def link_outbox_to_step(sender, instance, created, raw=False, **kwargs):
    if raw or not created:
        return
    waiting = runs_awaiting_step()
    if instance.run_id in waiting:
        waiting.discard(instance.run_id)
        Outbox.objects.for_tenant(instance.tenant_id).filter(run_id=instance.run_id, run_step__isnull=True).update(
            run_step=instance)

"""Thin receivers: a model change (a many-to-many one too) or an accounts domain signal becomes an Event."""

from django.db.models.signals import m2m_changed, post_delete, post_init, post_save, pre_delete
from django.dispatch import receiver

from accounts import signals as domain
from accounts.health_import import health_scores_imported
from accounts.models import Engagement, HealthScore

from . import events, related_events
from .selectors import window_scores, window_scores_many
from .subjects import WATCHED


def _watched(sender) -> bool:
    return sender._meta.label in WATCHED.values()


@receiver(post_init)
def remember_loaded_values(sender, instance, **kwargs):
    if _watched(sender):
        instance._automation_snapshot = events.snapshot(instance)


@receiver(post_save)
def model_saved(sender, instance, created, raw=False, **kwargs):
    if raw or not _watched(sender):
        return
    events.record_model_change(instance, created=created)
    if sender is Engagement:
        _engagement_event(instance)


@receiver(post_delete)
def model_deleted(sender, instance, **kwargs):
    if _watched(sender):
        events.record_model_change(instance, deleted=True)


@receiver(m2m_changed)
def related_rows_changed(sender, instance, action, reverse, model, pk_set, **kwargs):
    related_events.relation_changed(sender, instance, action, reverse, model, pk_set)


@receiver(pre_delete)
def related_row_deleting(sender, instance, **kwargs):
    related_events.related_row_deleting(sender, instance)


ENGAGEMENT_EVENTS = {"missed": "meeting_missed", "negative": "negative_outcome", "no_response": "no_response"}


def _engagement_event(engagement: Engagement) -> None:
    kind = ENGAGEMENT_EVENTS.get(engagement.outcome)
    if kind:
        events.emit(tenant_id=engagement.tenant_id, type="engagement_event", object_id=engagement.account_id,
                    account=engagement.account, payload={"event_type": kind, "engagement_type": engagement.kind,
                                                         "engagement_id": engagement.pk, "summary": engagement.summary})


def _score_change_payload(score: HealthScore, previous: HealthScore | None, windows: dict) -> dict:
    return {
        "current_score": float(score.overall_score),
        "previous_score": float(previous.overall_score) if previous else None,
        "risk_level": score.risk_level,
        "previous_risk_level": previous.risk_level if previous else None,
        "breakdown": score.breakdown,
        "window_scores": windows,
        "health_score_id": score.pk,
    }


@receiver(domain.health_score_recorded, sender=HealthScore)
def health_score_recorded(sender, score, previous, **kwargs):
    account = score.account
    events.emit(tenant_id=score.tenant_id, type="health_score_change", object_id=account.pk, account=account,
                payload=lambda: _score_change_payload(score, previous, window_scores(score)))


@receiver(health_scores_imported, sender=HealthScore, dispatch_uid="automation.signals.health_scores_imported")
def health_scores_imported_in_bulk(sender, tenant_id, imported, **kwargs):
    """A chunk of the nightly import: for each score, the events its single recording raises (the score created,
    the account's mirrors updated, ``health_score_change``), in that order, with one INSERT (``emit_many``)."""
    created = events.listening(tenant_id, "model_created", "healthscore")
    updated = events.listening(tenant_id, "model_updated", "account")
    changed = events.listening(tenant_id, "health_score_change", "account")
    if not (created or updated or changed):
        return
    scores = [row.score for row in imported]
    windows = window_scores_many(tenant_id, scores) if changed else [None] * len(scores)

    def raised():
        for row, window in zip(imported, windows):
            if created:
                yield events.model_change(row.score, created=True)
            if updated and row.mirrored and (change := events.model_change(row.account)) is not None:
                yield change
            if changed:
                yield events.NewEvent(type="health_score_change", object_id=row.account.pk, account=row.account,
                                      payload=_score_change_payload(row.score, row.previous, window))

    events.emit_many(tenant_id=tenant_id, events=raised())


@receiver(domain.stage_changed)
def stage_changed(sender, account, history, from_stage, to_stage, **kwargs):
    events.emit(tenant_id=account.tenant_id, type="stage_change", object_id=account.pk, account=account,
                payload={"from_stage": from_stage.name if from_stage else None, "to_stage": to_stage.name,
                         "journey_history_id": history.pk})


@receiver(domain.status_changed)
def status_changed(sender, account, from_status, to_status, created, **kwargs):
    events.emit(tenant_id=account.tenant_id, type="status_change", object_id=account.pk, account=account,
                payload={"from_status": from_status, "to_status": to_status, "created": created})


@receiver(domain.goal_status_changed)
def goal_status_changed(sender, goal, from_status, to_status, created, **kwargs):
    event = "created" if created else to_status
    events.emit(tenant_id=goal.tenant_id, type="goal_event", object_id=goal.account_id, account=goal.account,
                payload={"event": event, "goal_id": goal.pk, "goal_type": goal.goal_type, "title": goal.title,
                         "from_status": from_status, "to_status": to_status})

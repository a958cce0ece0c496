"""Rules fired by hand from the admin ("Test now", "Run now for account…", "Replay"), as messages.

The firing itself is ``automation.running``, the same as the API's /test and /execute, so a rule started from
the admin runs exactly as one started from the API: same subject, same webhook event, same dry run
(everything written, then rolled back with its on-commit work). Each helper returns (message level, text)
and never raises: a refusal is a warning, a crash an error message, never a server error page.
"""

from __future__ import annotations

from django.contrib import messages
from django.db import models, transaction

from accounts.models import Account
from csplatform.tenancy import tenant_context

from .. import running
from ..models import Run, Workflow
from .display import failed_conditions, outcome_text, refusal_text


def _subject(rule: Workflow, account: Account | None):
    return running.resolve_subject(rule, tenant=rule.tenant, account=account, pick_first=True)


def _what(rule: Workflow, subject) -> str:
    if isinstance(subject, models.Model):  # a webhook rule's subject is the (empty) request body
        return f"'{rule}' on {subject._meta.verbose_name} '{subject}'"
    return f"'{rule}'"


def test_rule(rule: Workflow, account: Account | None) -> tuple[int, str]:
    """Dry run: fire ``rule`` now (not held back by status or limits) and roll everything back.
    Returns (message level, message)."""
    with tenant_context(rule.tenant):
        try:
            subject, account = _subject(rule, account)
            result = running.dry_run(rule, subject=subject, account=account, body=None, sample_event=None,
                                     context={})
        except running.RunRequestError as exc:
            return messages.WARNING, f"'{rule}' cannot be tested: {refusal_text(exc)}"
        except Exception as exc:  # a bug in the engine or an action: say so, never a server error page
            return messages.ERROR, f"Test of '{rule}' crashed: {type(exc).__name__}: {exc}"
    what = _what(rule, subject)
    if result["status"] == Run.Status.SKIPPED:
        text = f"skipped ({Run.SkipReason(result['skip_reason']).label.lower()})"
        misses = failed_conditions(result["conditions"]["trace"])
        level, text = messages.WARNING, text + (f": {misses}" if misses else "")
    else:
        level = messages.SUCCESS if result["status"] == Run.Status.SUCCESS else messages.ERROR
        text = outcome_text(result["status"], [(a["type"], a["status"], a["error"], a["output"])
                                               for a in result["actions"]])
    if not result["live"]:
        text += " (the rule is not live: activate and enable it to let events fire it)"
    return level, f"Test of {what} (dry run, nothing was saved): {text}"


def run_rule(rule: Workflow, account: Account | None) -> tuple[int, str]:
    """Fire ``rule`` now for ``account``, for real (manual: status, cooldown and rate limit do not hold it)."""
    with tenant_context(rule.tenant):
        try:
            subject, account = _subject(rule, account)
            with transaction.atomic():  # one savepoint: a crash while reading the outcome undoes the run too
                run = running.execute(rule, subject=subject, account=account, body=None, context={})
                level, text = describe_run(run, rule, subject or account)
        except running.RunRequestError as exc:
            return messages.WARNING, f"'{rule}' cannot be run: {refusal_text(exc)}"
        except Exception as exc:
            return messages.ERROR, f"Run of '{rule}' crashed: {type(exc).__name__}: {exc}"
    return level, f"Ran {_what(rule, subject)} as run {run.pk}: {text}"


def replay_run(run: Run) -> tuple[int, str]:
    """Fire a finished run's rule again for the same event and account (``running.replay``)."""
    rule = run.workflow
    with tenant_context(rule.tenant):
        try:
            new, target = running.replay(run)
        except Exception as exc:
            return messages.ERROR, f"Replay of run {run.pk} crashed: {type(exc).__name__}: {exc}"
        level, text = describe_run(new, rule, target)
    return level, f"Replayed run {run.pk} of '{rule}' as run {new.pk}: {text}"


def describe_run(run: Run, rule: Workflow, target) -> tuple[int, str]:
    """(message level, text) for a run just made by hand or by a replay."""
    if run.status == Run.Status.SKIPPED:
        text = f"skipped ({run.get_skip_reason_display().lower()})"
        if run.skip_reason == Run.SkipReason.CONDITIONS_NOT_MET and target is not None:
            misses = failed_conditions(running.condition_trace(run, rule, target))
            text += f": {misses}" if misses else ""
        return messages.WARNING, text
    if run.status == Run.Status.QUEUED:
        return messages.INFO, f"queued for {run.scheduled_for or 'later'}"
    steps = [(s.action_type, s.status, s.error, s.output) for s in run.steps.order_by("position")]
    level = messages.SUCCESS if run.status == Run.Status.SUCCESS else messages.ERROR
    return level, outcome_text(run.status, steps)

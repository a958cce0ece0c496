"""Per-tenant index of what live rules listen to, cached, so a save nobody listens to writes nothing.

The index is ``{"event_type|model", ...}`` for the tenant's active, enabled rules, kept in Django's
cache (Redis in production) and dropped whenever a rule changes (at once and again on commit, so a
reader racing the commit cannot cache the old answer for long). An engine batch passes its ``memo`` (a
dict on the batch), so each tenant's index is read from the cache once, not once per write the actions make.
"""

from __future__ import annotations

from django.core.cache import cache
from django.db import transaction

from .models import Workflow
from .triggers import triggers

INDEX_TTL = 300


def _key(tenant_id) -> str:
    return f"automation:rule-index:{tenant_id}"


def build(tenant_id) -> frozenset[str]:
    entries = set()
    live = Workflow.objects.for_tenant(tenant_id).filter(status=Workflow.Status.ACTIVE, enabled=True)
    for trigger_type, config, model_type in live.values_list("trigger_type", "trigger_config", "model_type"):
        if trigger_type in triggers:
            for event_type, model in triggers.get(trigger_type).listens_to(config, model_type):
                entries.add(f"{event_type}|{model}")
    return frozenset(entries)


def _index(tenant_id, memo: dict | None) -> frozenset[str]:
    if memo is not None and str(tenant_id) in memo:
        return memo[str(tenant_id)]
    index = cache.get(_key(tenant_id))
    if index is None:
        index = build(tenant_id)
        if memo is None:  # an engine batch may still roll back what it read: it keeps its rebuild to itself
            cache.set(_key(tenant_id), index, INDEX_TTL)
    if memo is not None:
        memo[str(tenant_id)] = index
    return index


def interested(tenant_id, event_type: str, model: str, *, memo: dict | None = None) -> bool:
    return f"{event_type}|{model}" in _index(tenant_id, memo)


def invalidate(tenant_id, *, memo: dict | None = None) -> None:
    if memo is not None:
        memo.pop(str(tenant_id), None)
    cache.delete(_key(tenant_id))
    transaction.on_commit(lambda: cache.delete(_key(tenant_id)))

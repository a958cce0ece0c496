"""Per-tenant index of what live rules listen to, cached, so a save nobody listens to writes nothing.

The index is ``{"event_type|model", ...}`` for the tenant's active, enabled rules, kept in Django's
cache (Redis in production) and dropped whenever a rule changes (at once and again on commit, so a
reader racing the commit cannot cache the old answer for long). Inside ``memoized()`` (an engine
batch) each tenant's index is read from the cache once, not once per write the actions make.
"""

from __future__ import annotations

import contextvars
from contextlib import contextmanager

from django.core.cache import cache
from django.db import transaction

INDEX_TTL = 300
_memo: contextvars.ContextVar[dict | None] = contextvars.ContextVar("rule_index_memo", default=None)


def _key(tenant_id) -> str:
    return f"automation:rule-index:{tenant_id}"


def build(tenant_id) -> frozenset[str]:
    from .models import Workflow
    from .triggers import triggers

    entries = set()
    live = Workflow.objects.for_tenant(tenant_id).filter(status=Workflow.Status.ACTIVE, enabled=True)
    for trigger_type, config, model_type in live.values_list("trigger_type", "trigger_config", "model_type"):
        if trigger_type in triggers:
            for event_type, model in triggers.get(trigger_type).listens_to(config, model_type):
                entries.add(f"{event_type}|{model}")
    return frozenset(entries)


@contextmanager
def memoized():
    token = _memo.set({})
    try:
        yield
    finally:
        _memo.reset(token)


def _index(tenant_id) -> frozenset[str]:
    memo = _memo.get()
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


def interested(tenant_id, event_type: str, model: str) -> bool:
    return f"{event_type}|{model}" in _index(tenant_id)


def invalidate(tenant_id) -> None:
    if (memo := _memo.get()) is not None:
        memo.pop(str(tenant_id), None)
    cache.delete(_key(tenant_id))
    transaction.on_commit(lambda: cache.delete(_key(tenant_id)))

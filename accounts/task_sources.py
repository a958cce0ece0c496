"""What made a task, in a CSM's words and with a link: ``Task.source`` records it as text (``workflow:12``,
``workflow:12:failing``, ``dead-delivery:successplay:3:2025-01-31``, ``dead-delivery:journey:7:…``), and the
apps that write such tasks say what their ids are.

``accounts`` imports none of them (DESIGN.md: they sit above it). An app registers a describer per kind in
its own ``task_sources`` module, found on first use like the admin finds ``admin`` modules. A describer names
many at once (one query for all the ids of its kind, whatever the number of tasks)::

    @task_sources.register("workflow")
    def rules(tenant_id, pks: list[int]) -> dict[int, TaskSource]: ...

``task_sources_describe(tasks)`` names every task of a page with one call per kind present;
``task_source_describe(task)`` one task. A source is the first ``<kind>:<number>`` pair whose kind is
registered; ``None`` when nothing is (a task made by hand, a kind nobody describes, a rule since deleted).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Callable, Iterable

from django.urls import NoReverseMatch, reverse
from django.utils.module_loading import autodiscover_modules

from csplatform.registry import Registry


@dataclass(frozen=True)
class TaskSource:
    kind: str  # what a CSM calls it: "Rule", "SuccessPlay", "CRM journey"
    name: str
    url: str = ""  # its admin page; "" when there is none

    def __str__(self) -> str:
        return f"{self.kind} “{self.name}”"


Describer = Callable[[object, list], "dict[int, TaskSource]"]
task_sources: Registry[Describer] = Registry("task source", strict=False)
_discovered = False


def admin_url(name: str, pk) -> str:
    try:
        return reverse(name, args=[pk])
    except NoReverseMatch:
        return ""


def _discover() -> None:
    global _discovered
    if not _discovered:
        autodiscover_modules("task_sources")  # each app's ``task_sources`` registers its kinds
        _discovered = True


def source_key(source: str) -> tuple[str, int] | None:
    """``dead-delivery:successplay:3:2025-01-31`` -> ("successplay", 3): the first registered kind and its id."""
    _discover()
    parts = (source or "").split(":")
    for kind, ident in zip(parts, parts[1:]):
        if ident.isdigit() and task_sources.get(kind) is not None:
            return kind, int(ident)
    return None


def task_sources_describe(tasks: Iterable) -> dict:
    """What made each of ``tasks``, by task pk (None for a task nothing describes): one describer call, so one
    query or so, per tenant and kind present."""
    keys = {task.pk: (task.tenant_id, source_key(task.source)) for task in tasks}
    wanted: dict[tuple, set[int]] = defaultdict(set)
    for tenant_id, key in keys.values():
        if key is not None:
            wanted[(tenant_id, key[0])].add(key[1])
    found = {(tenant_id, kind): task_sources.get(kind)(tenant_id, sorted(pks))
             for (tenant_id, kind), pks in wanted.items()}
    return {pk: (found[(tenant_id, key[0])].get(key[1]) if key is not None else None)
            for pk, (tenant_id, key) in keys.items()}


def task_source_describe(task) -> TaskSource | None:
    """What made ``task`` (a rule, a SuccessPlay, a journey), or None."""
    return task_sources_describe([task])[task.pk]

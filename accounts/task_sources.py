"""What made a task, in a CSM's words and with a link: ``Task.source`` records it as text (``workflow:12``,
``workflow:12:failing``, ``dead-delivery:successplay:3:2025-01-31``, ``dead-delivery:journey:7:…``), and the
apps that write such tasks say what their ids are.

``accounts`` imports none of them (DESIGN.md: they sit above it). An app registers a describer per kind in
its own ``task_sources`` module, found on first use like the admin finds ``admin`` modules::

    @task_sources.register("workflow")
    def rule(tenant_id, pk) -> TaskSource | None: ...

``task_source_describe(task)`` reads the first ``<kind>:<number>`` pair of the source whose kind is registered;
``None`` when nothing is (a task made by hand, or a kind nobody describes).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

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


Describer = Callable[[object, int], "TaskSource | None"]
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


def task_source_describe(task) -> TaskSource | None:
    """What made ``task`` (a rule, a SuccessPlay, a journey), or None."""
    _discover()
    parts = (task.source or "").split(":")
    for kind, ident in zip(parts, parts[1:]):
        describe = task_sources.get(kind)
        if describe is not None and ident.isdigit():
            return describe(task.tenant_id, int(ident))
    return None

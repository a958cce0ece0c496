"""Rules another app keeps: the generic rule API and admin read them but never change them.

A SuccessPlay (``playbooks``) compiles itself into a rule with ``source="playbook"`` and saves it again
whenever the play changes; an edit made to that rule through ``/api/admin/automation``, ``/api/event-triggers``
or the Workflow admin would be silently overwritten by the play's next save (or leave the play describing
something that no longer runs). So the owning app registers its ``source`` here and the generic front doors
refuse to write such rules, naming where to edit them instead. The owner's own code keeps calling
``services.workflow_save``: nothing here is checked by the service, only by the front doors.

``automation`` never imports the owners (DESIGN.md): they register from their ``AppConfig.ready``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from django.db.models import Expression


@dataclass(frozen=True)
class Owner:
    source: str  # Workflow.source of the rules it keeps
    kind: str  # what a CSM calls the owning object, e.g. "SuccessPlay"
    # tenant_id -> (id, name) of the owning object as subqueries over ``OuterRef("pk")`` (the rule's id): naming
    # one rule or a page of them (accounts' task sources) is one query either way.
    columns: Callable[[object], tuple[Expression, Expression]]
    api_path: str  # where to edit it over the API, with {id}
    admin_url_name: str = ""  # where to edit it in the admin (reverse()d with the id)


_owners: dict[str, Owner] = {}


def register_owner(owner: Owner) -> None:
    _owners[owner.source] = owner


def owner_of(rule) -> Owner | None:
    return _owners.get(getattr(rule, "source", ""))


def owner_located(owner: Owner, tenant_id, rule_ids: list[int]) -> dict[int, tuple]:
    """``{rule id: (owner id, owner name)}`` of the rules ``owner`` keeps and that still have it (one query)."""
    from .models import Workflow  # the owners import this module while their own models load

    ident, name = owner.columns(tenant_id)
    rows = (Workflow.objects.for_tenant(tenant_id).filter(pk__in=rule_ids, source=owner.source)
            .annotate(owner_id=ident, owner_name=name).values_list("pk", "owner_id", "owner_name"))
    return {pk: (owner_id, owner_name) for pk, owner_id, owner_name in rows if owner_id is not None}


def is_managed(rule) -> bool:
    return owner_of(rule) is not None


def owners() -> list[Owner]:
    return list(_owners.values())


def managed_sources() -> list[str]:
    """The ``Workflow.source`` values of kept rules, for querysets that leave them out (the cockpit's plays)."""
    return list(_owners)


def managed_by(rule) -> dict | None:
    """``{"type", "id", "name", "endpoint"}`` of the object that keeps ``rule``, or None for a free rule."""
    owner = owner_of(rule)
    if owner is None:
        return None
    found = owner_located(owner, rule.tenant_id, [rule.pk]).get(rule.pk)
    ident, name = found if found else (None, "")
    return {"type": owner.kind, "id": ident, "name": name,
            "endpoint": owner.api_path.format(id=ident) if ident is not None else owner.api_path.format(id="")}


def refusal(rule) -> str:
    """Why a front door does not change ``rule`` (empty for a free rule)."""
    owner = managed_by(rule)
    if owner is None:
        return ""
    named = f"{owner['type']} '{owner['name']}'" if owner["name"] else f"its {owner['type']}"
    return (f"This rule is managed by {named}: change or delete it through {owner['endpoint']} "
            f"(an edit here would be overwritten by the {owner['type']}'s next save).")

"""Who a rule gives work to (create_task's ``assignee``, assign_to_user's ``user``, create_note's
``created_by``): a member of the rule's tenant by id or email, a role name, or a ``{{ template }}``.

A role name is resolved when the rule runs, from the members' roles (``accounts.models.Role``):

    role name                 roles it picks from           the account's owner first
    auto, account_owner       practitioner, tenant_admin    yes
    customer_success_team     practitioner                  yes
    senior_account_manager    practitioner                  yes
    senior_sales_rep          practitioner                  no
    sales_manager             tenant_admin                  no

"Owner first": the account's owner, when they are a member with one of the roles. Otherwise the member
with those roles who has the least work (open tasks assigned plus accounts owned), ties by user id: each
pick adds to the chosen member's work, so repeated picks go round the members in turn.

Save time (``check``): an id or email must be a member of the tenant, a role name must be in the table, a
template is accepted. Run time (``resolve``): a template renders to an id, an email or a role name; a member
who left since, or a template that renders to nothing or to a stranger, is an ``AssigneeError``.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.db.models import Count

from accounts.models import Account, Membership, Role, Task

from .triggers import ConfigError


@dataclass(frozen=True)
class RolePick:
    roles: tuple[str, ...]
    owner_first: bool


ROLE_NAMES: dict[str, RolePick] = {
    "auto": RolePick((Role.PRACTITIONER, Role.TENANT_ADMIN), True),
    "account_owner": RolePick((Role.PRACTITIONER, Role.TENANT_ADMIN), True),
    "customer_success_team": RolePick((Role.PRACTITIONER,), True),
    "senior_account_manager": RolePick((Role.PRACTITIONER,), True),
    "senior_sales_rep": RolePick((Role.PRACTITIONER,), False),
    "sales_manager": RolePick((Role.TENANT_ADMIN,), False),
}


class AssigneeError(Exception):
    """The value names nobody who can get the work (the message says why)."""


def is_template(value) -> bool:
    return isinstance(value, str) and "{{" in value


def _members(tenant_id):
    return get_user_model().objects.filter(memberships__tenant_id=tenant_id)


def member(tenant_id, who):
    """The member of the tenant ``who`` names (id or email), or None."""
    if isinstance(who, bool) or not isinstance(who, (int, str)):
        return None
    who = who.strip() if isinstance(who, str) else who
    if isinstance(who, str) and "@" in who:
        return _members(tenant_id).filter(email__iexact=who).first()
    if isinstance(who, int) or who.isascii() and who.isdigit():
        return _members(tenant_id).filter(pk=int(who)).first()
    return None


def _names_a_user(who) -> bool:
    if isinstance(who, str):
        return "@" in who or who.strip().isascii() and who.strip().isdigit()
    return isinstance(who, int) and not isinstance(who, bool)


def check(value, tenant_id, field_name: str, *, roles: bool = True) -> None:
    """At save: ConfigError unless ``value`` is a member (id or email), a known role name, or a template."""
    if is_template(value):
        return
    if _names_a_user(value):
        if member(tenant_id, value) is None:
            raise ConfigError(field_name, f"'{value}' is not a member of this tenant")
        return
    if roles and isinstance(value, str) and value.strip() in ROLE_NAMES:
        return
    known = f"; or a role name: {', '.join(ROLE_NAMES)}" if roles else ""
    raise ConfigError(field_name, f"'{value}' is neither a member's id nor email{known}")


def resolve(value, *, tenant_id, account: Account | None, render=None, required: bool = False):
    """At run time: the user ``value`` names (``render`` renders a template first), or None when a role
    has no member to pick (an AssigneeError instead if ``required``). Raises AssigneeError."""
    shown = value
    if is_template(value):
        value = render(value).strip()
        if not value:
            raise AssigneeError(f"'{shown}' rendered to nothing")
    if _names_a_user(value):
        user = member(tenant_id, value)
        if user is None:
            raise AssigneeError(f"'{value}' is not a member of this tenant" +
                                (f" ('{shown}')" if shown != value else ""))
        return user
    if isinstance(value, str) and value.strip() in ROLE_NAMES:
        user = pick(tenant_id, account, value.strip())
        if user is None and required:
            raise AssigneeError(f"no member of this tenant has the role "
                                f"{' or '.join(ROLE_NAMES[value.strip()].roles)} ('{value.strip()}')")
        return user
    raise AssigneeError(f"'{value}' ({shown}) is neither a member's id nor email, nor a role name")


def pick(tenant_id, account: Account | None, role_name: str):
    """The member a role name stands for (see the table above), or None when nobody has those roles."""
    spec = ROLE_NAMES[role_name]
    ids = sorted(Membership.objects.filter(tenant_id=tenant_id, role__in=spec.roles).values_list("user_id", flat=True))
    if not ids:
        return None
    if spec.owner_first and account is not None and account.owner_id in ids:
        return account.owner
    work = dict.fromkeys(ids, 0)
    for user_id, n in (Task.objects.for_tenant(tenant_id).filter(assignee_id__in=ids, status__in=Task.OPEN_STATUSES)
                       .values_list("assignee_id").annotate(n=Count("pk")).order_by()):
        work[user_id] += n
    for user_id, n in (Account.objects.for_tenant(tenant_id).filter(owner_id__in=ids)
                       .values_list("owner_id").annotate(n=Count("pk")).order_by()):
        work[user_id] += n
    return get_user_model().objects.get(pk=min(ids, key=lambda user_id: (work[user_id], user_id)))


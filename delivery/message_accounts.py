"""Which account an outbox message is about: the outbox admin's account column, filter and search.

A message keeps who wrote it as plain ids (``run_id``; a journey step records the message's ``message_id``), and
delivery imports none of the apps above it (DESIGN.md). So each writer says which account its messages are
about, in its own ``message_accounts`` module, found on first use like the admin's ``admin`` modules::

    class RunMessages(MessageAccounts): ...
    message_accounts.register("automation")(RunMessages())

A message none of them claims (written by hand, by a bench) is about no account.
"""

from __future__ import annotations

from django.db.models import Q, QuerySet
from django.utils.module_loading import autodiscover_modules

from accounts.models import Account
from csplatform.registry import Registry


class MessageAccounts:
    """One writer's messages and their accounts."""

    def accounts_of(self, messages: list) -> dict:
        """``{message pk: Account}`` for those of ``messages`` this writer knows, in a query or two."""
        raise NotImplementedError

    def about(self, accounts: QuerySet[Account]) -> Q:
        """A ``Q`` over ``Outbox``: this writer's messages about any of ``accounts``."""
        raise NotImplementedError


message_accounts: Registry[MessageAccounts] = Registry("message accounts")
_discovered = False


def _writers() -> list[MessageAccounts]:
    global _discovered
    if not _discovered:
        autodiscover_modules("message_accounts")  # each app's ``message_accounts`` registers its writer
        _discovered = True
    return [message_accounts.get(key) for key in message_accounts.keys()]


def accounts_of(messages: list) -> dict:
    """``{message pk: Account}`` of the messages that are about an account."""
    found: dict = {}
    for writer in _writers():
        found.update(writer.accounts_of([m for m in messages if m.pk not in found]))
    return found


def about(accounts: QuerySet[Account]) -> Q:
    """A ``Q`` over ``Outbox`` matching the messages about any of ``accounts`` (nothing when no writer says)."""
    condition = Q(pk__in=[])
    for writer in _writers():
        condition |= writer.about(accounts)
    return condition

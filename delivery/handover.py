"""Handing the messages of one transaction to celery together, not one task per message.

A run (or a bulk import) that writes 500 messages in one transaction used to queue 500 tasks on commit; each
paid celery's and the broker's overhead and most found their message already taken by a neighbour's drain.

``on_commit_collected`` still registers one ``on_commit`` callback per call (so Django's rules for savepoints
apply to each, unchanged), but the ids of a transaction are collected in one list, and a callback hands
over every id from its own position to the end of the list that no earlier callback handed over. On commit
the first callback therefore sends them all, in one ``send`` call, and the others find nothing left. (A test's
``captureOnCommitCallbacks`` runs only the callbacks registered inside its block: those send exactly the ids
given inside it.)

The list belongs to the connection's current list of callbacks: a commit, a rollback or a rolled-back
savepoint replaces that, so the next id starts a new list. Ids of a rolled-back savepoint may still be sent
by an earlier callback that survived: the task then finds no such row, which is harmless.
"""

from __future__ import annotations

from typing import Callable

from django.db import DEFAULT_DB_ALIAS, transaction


class _Collection:
    def __init__(self, hooks: list):
        self.hooks = hooks  # the connection's list of on-commit callbacks this collection belongs to
        self.ids: list = []
        self.sent = 0  # ids[:sent] were handed over


class _HandOver:
    """One call's on-commit callback: hands over the collection's ids from ``start`` that no earlier callback
    did. Like a ``functools.partial`` it shows ``func`` (the sender) and ``args`` (the ids of its own call)."""

    def __init__(self, send: Callable[[list], None], collection: _Collection, start: int, end: int):
        self.func, self.collection, self.start, self.end = send, collection, start, end

    @property
    def args(self) -> tuple[list]:
        return (self.collection.ids[self.start:self.end],)

    def __call__(self) -> None:
        collection = self.collection
        ids = collection.ids[max(self.start, collection.sent):]
        collection.sent = max(collection.sent, len(collection.ids))
        if ids:
            self.func(ids)


def on_commit_collected(ids: list, send: Callable[[list], None], *, using: str = DEFAULT_DB_ALIAS) -> None:
    """Call ``send`` with ``ids`` (together with the other ids of the same transaction) when it commits;
    never if it rolls back. Outside a transaction at once."""
    if not ids:
        return
    connection = transaction.get_connection(using)
    if not connection.in_atomic_block:
        send(list(ids))
        return
    collection = getattr(connection, "_outbox_collection", None)
    if collection is None or collection.hooks is not connection.run_on_commit:
        collection = connection._outbox_collection = _Collection(connection.run_on_commit)
    start = len(collection.ids)
    collection.ids.extend(ids)
    transaction.on_commit(_HandOver(send, collection, start, len(collection.ids)), using=using)


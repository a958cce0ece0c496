"""What an app adds to the cockpit: timeline entries, "what's next" items, fired plays and actions.

Each app registers one ``Source`` (``register(MySource())``) from its ``AppConfig.ready``; ``accounts``
registers its own (notes, tasks, scores, ...) the same way. Every method gets the account or the book of
accounts and returns plain rows; each reads through ``Model.objects.for_tenant(...)`` with a bounded number
of queries (one or two per kind, whatever the history), so the pages stay fast.

Rows carry words, not ids: ``title`` and ``detail`` are what a CSM reads, ``status`` a short state
("delivered", "failed") and ``tone`` how it should look ("good", "warn", "bad" or "").
"""

from __future__ import annotations

import datetime
import re
from dataclasses import dataclass, field
from typing import Iterable

from django import forms
from django.db.models import QuerySet
from django.urls import NoReverseMatch, get_script_prefix, get_urlconf, reverse

from csplatform.permissions import EVERYONE
from csplatform.registry import Registry

GOOD, WARN, BAD = "good", "warn", "bad"


@dataclass(frozen=True)
class Kind:
    """A kind of timeline entry: the filter shows ``label`` ("Notes"), an entry ``one`` ("Note"); ``order``
    places it among the filters."""

    key: str
    label: str
    one: str
    order: int = 50


@dataclass(frozen=True)
class Entry:
    at: datetime.datetime
    kind: str
    title: str
    detail: str = ""
    status: str = ""
    tone: str = ""
    url: str = ""
    links: tuple[tuple[str, str], ...] = ()  # (words, url) shown after the detail: what made a task, ...


@dataclass(frozen=True)
class Upcoming:
    """Something scheduled for the account: a journey step, a delayed run, a cooldown, a renewal."""

    at: datetime.datetime | datetime.date | None
    what: str  # e.g. "Journey step", "Cooldown"
    title: str
    detail: str = ""
    url: str = ""


@dataclass(frozen=True)
class Play:
    """One play fired for an account of the book (home page)."""

    at: datetime.datetime
    what: str  # "SuccessPlay", "Rule", "Journey", ...
    title: str
    account_id: object
    account_name: str
    status: str
    tone: str = ""
    delivery_failed: bool = False
    url: str = ""


@dataclass
class Plays:
    """The plays one source fired for a book in a window: how many, how many with a failed delivery, the latest."""

    fired: int = 0
    delivery_failed: int = 0
    latest: list[Play] = field(default_factory=list)


class _ListedChoices(forms.models.ModelChoiceIterator):
    """Iterates the field's queryset itself (one query, cached for rendering and validating alike), instead
    of Django's ``queryset.iterator()`` (a server-side cursor: three round trips, on every render)."""

    def __iter__(self):
        if self.field.empty_label is not None:
            yield ("", self.field.empty_label)
        for obj in (self.field.rows if self.field.rows is not None else self.queryset):
            yield self.choice(obj)


class ModelChoice(forms.ModelChoiceField):
    """The choice field of the cockpit's action forms (a handful of rows: contacts, plays, members). ``rows``:
    the queryset's rows read already (two forms offering the account's contacts read them once)."""

    iterator = _ListedChoices

    def __init__(self, *args, labels=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.labels = labels
        self.rows: list | None = None

    def label_from_instance(self, obj):
        return self.labels(obj) if self.labels else super().label_from_instance(obj)


class Action:
    """A small form on the 360 page that does one thing through a service (log a note, trigger a play).
    ``perform`` returns the success message; it raises ``django.core.exceptions.ValidationError`` to refuse."""

    key = ""
    label = ""
    roles = frozenset()  # who may do it (roles in the account's tenant)
    order = 50

    def form(self, account, user, data=None) -> forms.Form:  # pragma: no cover - interface
        raise NotImplementedError

    def perform(self, form: forms.Form, account, user) -> str:  # pragma: no cover - interface
        raise NotImplementedError


class Source:
    """One app's part of the cockpit. Everything is optional; ``read_roles`` decides who sees it at all."""

    key = ""
    kinds: tuple[Kind, ...] = ()
    read_roles = EVERYONE
    actions: tuple[Action, ...] = ()

    def timeline(self, account, *, kinds: set[str], before: datetime.datetime | None, limit: int) -> list[Entry]:
        """Up to ``limit`` entries of ``kinds`` per kind, newest first, older than ``before`` when given."""
        return []

    def upcoming(self, account, *, now: datetime.datetime) -> list[Upcoming]:
        return []

    def plays(self, tenant, accounts: QuerySet, *, since: datetime.datetime, limit: int) -> Plays | None:
        """The plays fired for ``accounts`` (a queryset of the book) since ``since``; None if this source has none."""
        return None


sources: Registry[Source] = Registry("cockpit source")


def register(source: Source) -> Source:
    sources.register(source.key)(source)
    return source


def readable(role: str | None) -> list[Source]:
    """The sources a member with ``role`` may see, in key order (a stable page)."""
    return [s for s in (sources.get(key) for key in sources.keys()) if role in s.read_roles]


def kinds_of(chosen: Iterable[Source]) -> list[Kind]:
    """The distinct kinds of ``chosen`` sources, in filter order (two sources may add to one kind)."""
    found: dict[str, Kind] = {}
    for source in chosen:
        for kind in source.kinds:
            found.setdefault(kind.key, kind)
    return sorted(found.values(), key=lambda k: (k.order, k.label))


_HOLE = "cockpit0hole0"  # stands for an argument in a remembered URL: letters and digits, kept as is by reverse()
_PLAIN = re.compile(r"[A-Za-z0-9_-]+")
_shapes: dict[tuple, tuple[str, ...] | None] = {}


def admin_url(name: str, *args) -> str:
    """The admin page ``name`` (e.g. ``admin:accounts_note_change``), or "" when it is not registered.

    A page's URL shape is resolved once per process (per script prefix and URLconf) and filled with ids
    (numbers, UUIDs) after that: a 360 page links a hundred rows, and ``reverse()`` costs 30 µs each."""
    key = (name, len(args), get_script_prefix(), get_urlconf())
    if key not in _shapes:
        try:
            _shapes[key] = tuple(reverse(name, args=[_HOLE] * len(args)).split(_HOLE))
        except NoReverseMatch:  # not registered, or its converters refuse the placeholder: reverse() each time
            _shapes[key] = None
    shape, values = _shapes[key], [str(arg) for arg in args]
    if shape is not None and len(shape) == len(args) + 1 and all(_PLAIN.fullmatch(v) for v in values):
        return "".join(part + value for part, value in zip(shape, values)) + shape[-1]
    try:
        return reverse(name, args=args)
    except NoReverseMatch:
        return ""

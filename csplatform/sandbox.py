"""The template sandbox: rule actions (notes, tasks, webhook bodies) and email templates render with it.

No loader tags, no ``{% load %}``, no tag at all unless asked for, and only filters whose output is bounded
by their input: center/ljust/rjust/stringformat would build strings of any size from a small template.
"""

from __future__ import annotations

from django.template import Engine, Library, defaultfilters, defaulttags

SAFE_FILTERS = ("add", "addslashes", "capfirst", "cut", "date", "default", "default_if_none", "divisibleby",
                "escape", "escapejs", "first", "floatformat", "iriencode", "join", "last", "length", "linebreaksbr",
                "lower", "pluralize", "slice", "slugify", "striptags", "time", "title", "truncatechars",
                "truncatewords", "upper", "urlencode", "wordcount", "yesno")
MAX_FLOAT_DIGITS = 20
MAX_RENDERED = 100_000


def _bounded_floatformat(value, arg=-1):
    try:
        digits = int(str(arg).rstrip("gu") or -1)
    except ValueError:
        digits = -1
    if abs(digits) > MAX_FLOAT_DIGITS:
        return value
    return defaultfilters.floatformat(value, arg)


_safe_filters = Library()
for _name in SAFE_FILTERS:
    _safe_filters.filter(_name, defaultfilters.register.filters[_name])
_safe_filters.filter("floatformat", _bounded_floatformat, is_safe=True)


class _Sandbox(Engine):
    default_builtins: list = []


def sandbox_engine(*, tags: tuple[str, ...] = (), autoescape: bool = False) -> Engine:
    """A template engine that knows only the safe filters and the named built-in tags."""
    library = Library()
    library.filters.update(_safe_filters.filters)
    for name in tags:
        library.tags[name] = defaulttags.register.tags[name]
    engine = _Sandbox(debug=False, autoescape=autoescape, libraries={})
    engine.template_builtins = [library]
    return engine

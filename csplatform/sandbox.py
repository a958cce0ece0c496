"""The template sandbox: rule actions (notes, tasks, webhook bodies) and email templates render with it.

No loader tags, no ``{% load %}``, no tag at all unless asked for, and only filters whose output is bounded
by their input: center/ljust/rjust/stringformat would build strings of any size from a small template.

Loops are bounded while they render, not after: ``{% for %}`` takes at most ``MAX_LOOP_ITEMS`` items, what
a loop's body has rendered so far in one template is counted against ``MAX_LOOP_OUTPUT``, and its loops may
take ``MAX_LOOP_SECONDS`` in all; past any of them the render stops with ``RenderTooLarge`` (a ValueError), so
a 100 KB value looped over itself fails in milliseconds instead of building gigabytes. (Outside loops a
template's output is bounded by its size and its filters'.)
"""

from __future__ import annotations

import time

from django.template import Engine, Library, Node, NodeList, defaultfilters, defaulttags

SAFE_FILTERS = ("add", "addslashes", "capfirst", "cut", "date", "default", "default_if_none", "divisibleby",
                "escape", "escapejs", "first", "floatformat", "iriencode", "join", "last", "length", "linebreaksbr",
                "lower", "pluralize", "slice", "slugify", "striptags", "time", "title", "truncatechars",
                "truncatewords", "upper", "urlencode", "wordcount", "yesno")
MAX_FLOAT_DIGITS = 20
MAX_RENDERED = 100_000
MAX_LOOP_ITEMS = 10_000
MAX_LOOP_OUTPUT = 500_000  # characters a template's loops may render in all (an email may be that long)
MAX_LOOP_SECONDS = 1.0
_BUDGET, _DEADLINE = "sandbox:loop-output", "sandbox:loop-deadline"


class RenderTooLarge(ValueError):
    """A loop went past the sandbox's bounds while rendering."""


class _Counted(Node):
    """A node of a loop's body whose output is counted against the template's loop budget (its ``nodelist``
    holds the node, so code that walks templates, e.g. the variable checks of email templates, still sees it)."""

    child_nodelists = ("nodelist",)

    def __init__(self, inner: Node):
        self.inner, self.token, self.origin = inner, getattr(inner, "token", None), getattr(inner, "origin", None)
        self.nodelist = NodeList([inner])

    def render_annotated(self, context):
        out = self.inner.render_annotated(context)
        used = context.render_context.get(_BUDGET, 0) + len(out)
        if used > MAX_LOOP_OUTPUT:
            raise RenderTooLarge(f"the template's loops render more than {MAX_LOOP_OUTPUT} characters")
        context.render_context[_BUDGET] = used
        if time.monotonic() > context.render_context[_DEADLINE]:
            raise RenderTooLarge(f"the template's loops take longer than {MAX_LOOP_SECONDS} s")
        return out


class _BoundedFor(defaulttags.ForNode):
    def render(self, context):
        values = self.sequence.resolve(context, ignore_failures=True)
        if values is not None and hasattr(values, "__len__") and len(values) > MAX_LOOP_ITEMS:
            raise RenderTooLarge(f"a loop over {len(values)} items (at most {MAX_LOOP_ITEMS})")
        if _DEADLINE not in context.render_context:  # the first loop of this render starts the clock
            context.render_context[_DEADLINE] = time.monotonic() + MAX_LOOP_SECONDS
        return super().render(context)


def _bounded_for(parser, token):
    node = defaulttags.do_for(parser, token)
    node.__class__ = _BoundedFor
    node.nodelist_loop = NodeList(_Counted(child) for child in node.nodelist_loop)
    return node


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
        library.tags[name] = _bounded_for if name == "for" else defaulttags.register.tags[name]
    engine = _Sandbox(debug=False, autoescape=autoescape, libraries={})
    engine.template_builtins = [library]
    return engine

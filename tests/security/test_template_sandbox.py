"""Hostile templates in rule actions (``automation.actions.render`` / ``check_template``): a tenant's rule
must not run code, reach methods or objects beyond the documented plain-data context, or another tenant's rows.

Read-only review of automation/ (owned elsewhere). Findings T1-T3 of the review (docs/security.md) were
fixed in automation.actions (copies of the context, a filter allow-list, an engine without default tags);
the tests below keep them fixed.
"""

from __future__ import annotations

import datetime
from decimal import Decimal
from types import SimpleNamespace

import pytest
from django.template import TemplateSyntaxError

from automation.actions import ActionContext, check_template, render
from automation.triggers import ConfigError
from tests.factories import AccountFactory, MembershipFactory

pytestmark = pytest.mark.django_db

PLAIN = (str, int, float, bool, type(None))


@pytest.fixture
def ctx(tenant, other_tenant):
    owner = MembershipFactory(tenant=tenant).user
    account = AccountFactory(tenant=tenant, name="Globex", owner=owner)
    AccountFactory(tenant=other_tenant, name="Someone else's account")
    return ActionContext(
        tenant=tenant, workflow=SimpleNamespace(pk=7, name="Renewal alert"),
        run=SimpleNamespace(event=SimpleNamespace(type="account.updated")), account=account, subject=account,
        event_payload={"id": str(account.pk), "name": "Globex", "tags": ["a", "b"], "nested": {"k": "v"}},
        extra={"note": "manual run"},
    )


def walk(value, path="context"):
    yield path, value
    if isinstance(value, dict):
        for key, item in value.items():
            yield from walk(item, f"{path}.{key}")
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            yield from walk(item, f"{path}.{index}")


def test_the_template_context_is_plain_data_only(ctx):
    """No model instance, manager or callable object in the context: nothing to traverse to other rows
    (``account.tenant``, ``account.owner.memberships``, a related manager of another tenant)."""
    for path, value in walk(ctx.template_context()):
        assert isinstance(value, (*PLAIN, dict, list, tuple)), f"{path} is a {type(value).__name__}"


@pytest.mark.parametrize("source", [
    "{{ account.tenant }}", "{{ account.owner.memberships }}", "{{ account.parent.name }}",
    "{{ account.contacts.all }}", "{{ workflow.tenant.memberships.all }}", "{{ tenant }}", "{{ request.user }}",
    "{{ settings.SECRET_KEY }}", "{{ account.objects }}",
])
def test_it_renders_objects_outside_the_documented_context_as_nothing(ctx, source):
    check_template(source, "body")  # unknown names are not a syntax error ...
    assert render(source, ctx) == ""  # ... and resolve to nothing


def test_it_renders_the_documented_variables(ctx):
    assert render("{{ account.name }} / {{ workflow.name }} / {{ event.name }} / {{ custom.note }}", ctx) == (
        "Globex / Renewal alert / Globex / manual run"
    )
    assert "Someone else" not in render("{{ account }} {{ event }} {{ custom }}", ctx)


@pytest.mark.parametrize("source", [
    "{{ account.__class__ }}", "{{ event.__class__.__mro__ }}", "{{ custom.__init__.__globals__ }}",
    "{{ workflow._meta }}", "{{ account.name.__class__.__subclasses__ }}",
])
def test_it_refuses_private_attributes(ctx, source):
    with pytest.raises(ConfigError):
        check_template(source, "body")
    with pytest.raises(TemplateSyntaxError):
        render(source, ctx)


@pytest.mark.parametrize("source", [
    "{% load i18n %}", "{% include 'admin/base.html' %}", "{% extends 'admin/base.html' %}", "{% debug %}",
    "{% lorem 1000000 w %}", "{% url 'admin:index' %}", "{% for x in event.tags %}{{ x }}{% endfor %}",
    "{% now 'Y' %}", "{% templatetag openblock %}",
])
def test_it_refuses_template_tags_when_a_rule_is_saved(source):
    with pytest.raises(ConfigError):
        check_template(source, "body")


def test_it_loads_no_tag_library_even_unchecked(ctx):
    with pytest.raises(TemplateSyntaxError):
        render("{% load static %}{% static 'x' %}", ctx)


# --- the review's findings T1-T3 (docs/security.md), fixed in automation.actions ----------------------

# T1
@pytest.mark.parametrize("source", ["{{ event.clear }}", "{{ event.tags.pop }}", "{{ event.nested.clear }}",
                                    "{{ custom.popitem }}"])
def test_a_template_cannot_change_the_event_it_renders(ctx, source):
    payload_before, extra_before = repr(ctx.event_payload), repr(ctx.extra)
    check_template(source, "body")
    render(source, ctx)
    assert (repr(ctx.event_payload), repr(ctx.extra)) == (payload_before, extra_before)


# T2
@pytest.mark.parametrize("source", ["{{ account.name|center:'100000000' }}", "{{ account.name|ljust:'100000000' }}",
                                    "{{ account.name|stringformat:'100000000s' }}"])
def test_it_refuses_output_amplifying_filters_when_a_rule_is_saved(source):
    with pytest.raises(ConfigError):
        check_template(source, "body")


# T3
@pytest.mark.parametrize("source", ["{% lorem 3 w %}", "{% now 'Y' %}", "{% url 'admin:index' %}", "{% debug %}",
                                    "{% for x in event.tags %}{{ x }}{% endfor %}"])
def test_render_itself_refuses_template_tags(ctx, source):
    """Even a template that never went through check_template (admin, seeds, data migrations)."""
    with pytest.raises(TemplateSyntaxError):
        render(source, ctx)


def test_dates_and_decimals_in_the_payload_stay_data(ctx):
    ctx.event_payload.update({"when": datetime.date(2026, 1, 2).isoformat(), "arr": str(Decimal("10.50"))})
    assert render("{{ event.when }} {{ event.arr }}", ctx) == "2026-01-02 10.50"


def test_a_loop_over_a_large_value_stops_while_rendering_not_after(api, tenant):
    """The probe's case: a template looping over a 100 KB value, previewed: a 400 in well under a second, and
    nothing near the gigabytes the loop would build (issue 15, "bounded rendering")."""
    import time  # noqa: PLC0415 - this test's imports
    import tracemalloc  # noqa: PLC0415

    from tests.factories import EmailTemplateFactory  # noqa: PLC0415

    template = EmailTemplateFactory(tenant=tenant, name="loop", variables=["big"],
                                    html="{% for c in custom.big %}{{ custom.big }}{% endfor %}")
    tracemalloc.start()
    started = time.perf_counter()
    response = api.post(f"/api/email-templates/{template.pk}/preview", {"custom": {"big": "x" * 100_000}},
                        format="json")
    elapsed = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert response.status_code == 400 and "loop" in str(response.json()), response.json()
    assert elapsed < 1.0 and peak < 50_000_000  # bounds of the behaviour (tens of ms, a few MB), not a benchmark


def test_rule_templates_loop_within_bounds_too():
    from csplatform.sandbox import RenderTooLarge, sandbox_engine  # noqa: PLC0415
    from django.template import Context  # noqa: PLC0415

    engine = sandbox_engine(tags=("for",))
    assert engine.from_string("{% for i in items %}{{ i }},{% endfor %}").render(Context({"items": [1, 2]})) == "1,2,"
    with pytest.raises(RenderTooLarge):
        engine.from_string("{% for i in items %}x{% endfor %}").render(Context({"items": list(range(20_000))}))


def test_loops_render_under_a_time_budget(monkeypatch):
    from csplatform import sandbox  # noqa: PLC0415 - this test's imports
    from django.template import Context  # noqa: PLC0415

    engine = sandbox.sandbox_engine(tags=("for",))
    template = engine.from_string("{% for i in items %}{{ i }}{% endfor %}")
    assert template.render(Context({"items": [1, 2, 3]})) == "123"  # well within a second
    monkeypatch.setattr(sandbox, "MAX_LOOP_SECONDS", -1.0)  # a budget already spent when the loop starts
    with pytest.raises(sandbox.RenderTooLarge, match="longer than"):
        template.render(Context({"items": [1, 2, 3]}))

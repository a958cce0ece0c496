"""What an email template may contain, checked when it is saved: Django template syntax in the sandbox,
known variables only (or custom ones it declares), well-formed A/B variants. Imports no model, so the
model's ``clean()`` can use it without an import cycle."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.core.exceptions import ValidationError
from django.template import Engine, TemplateSyntaxError
from django.template.base import FilterExpression, Variable, VariableNode
from django.template.defaulttags import ForNode, IfNode, WithNode

from csplatform.sandbox import sandbox_engine

if TYPE_CHECKING:
    from .models import EmailTemplate

# The template sandbox's bounded filters plus a few control tags; no {% include %}/{% extends %}/{% load %},
# no {% lorem %}/{% url %}/{% debug %}/{% now %}, no width filters (see csplatform.sandbox).
TAGS = ("if", "for", "with", "comment", "firstof")
HTML_ENGINE = sandbox_engine(tags=TAGS, autoescape=True)
TEXT_ENGINE = sandbox_engine(tags=TAGS, autoescape=False)
MAX_LOOP_DEPTH = 1

KNOWN: dict[str, set[str] | None] = {
    "account": {"id", "name", "health_score", "status", "risk_level", "arr", "industry", "size", "renewal_date",
                "owner_name", "owner_email"},
    "contact": {"id", "name", "first_name", "email", "role", "phone"},
    "engagement": {"last_meeting_date", "last_engagement_type", "last_engagement_date", "next_meeting_date"},
    "goals": {"active_goals", "completed_goals", "at_risk_goals", "missed_goals"},
    "csm": {"name", "email"},
    "tenant": {"name"},
    "unsubscribe_url": None,
}
TEXT_FIELDS = ("subject", "html", "text")


# --- validation ---------------------------------------------------------------------------------

def _names_in(source: str, engine: Engine) -> tuple[set[str], set[str]]:
    """(dotted variable names used, names bound locally by for/with)."""
    template = engine.from_string(source or "")
    used, local = set(), set()
    depth = [0]

    def expr(fe):
        if not isinstance(fe, FilterExpression):
            return
        if isinstance(fe.var, Variable) and fe.var.lookups:
            used.add(".".join(fe.var.lookups))
        for _func, args in fe.filters:
            for is_lookup, arg in args:
                if is_lookup and isinstance(arg, Variable) and arg.lookups:
                    used.add(".".join(arg.lookups))

    def condition(c):
        if c is None:
            return
        if hasattr(c, "value") and isinstance(c.value, FilterExpression):
            expr(c.value)
        for part in ("first", "second"):
            if getattr(c, part, None) is not None:
                condition(getattr(c, part))

    def visit(nodelist):
        for node in nodelist or []:
            if isinstance(node, VariableNode):
                expr(node.filter_expression)
            elif isinstance(node, IfNode):
                for cond, nodes in node.conditions_nodelists:
                    condition(cond)
                    visit(nodes)
                continue
            elif isinstance(node, ForNode):
                expr(node.sequence)
                local.update(node.loopvars)
                local.add("forloop")
                depth[0] += 1
                if depth[0] > MAX_LOOP_DEPTH:  # nested loops multiply: a few short strings make billions of steps
                    raise TemplateSyntaxError("loops inside loops are not allowed")
                for attr in node.child_nodelists:
                    visit(getattr(node, attr, None))
                depth[0] -= 1
                continue
            elif isinstance(node, WithNode):
                for value in node.extra_context.values():
                    expr(value)
                local.update(node.extra_context)
            for attr in node.child_nodelists:
                visit(getattr(node, attr, None))

    visit(template.nodelist)
    return used, local


def declared_names(variables) -> set[str]:
    return {v.removeprefix("custom.") for v in variables or [] if isinstance(v, str)}


def unknown_variables(source: str, variables=(), engine: Engine = TEXT_ENGINE) -> list[str]:
    """Variables ``source`` uses that the context will not have (raises TemplateSyntaxError)."""
    used, local = _names_in(source, engine)
    declared = declared_names(variables)
    unknown = []
    for name in sorted(used):
        root, _, rest = name.partition(".")
        attribute = rest.split(".")[0] if rest else ""
        if root in local or root in declared:
            continue
        if root == "custom":
            if attribute and attribute in declared:
                continue
        elif root in KNOWN and (KNOWN[root] is None or not attribute or attribute in KNOWN[root]):
            continue
        unknown.append(name)
    return unknown


def email_template_validate(template: EmailTemplate) -> None:
    """Raise ValidationError naming each field with a syntax error or an unknown variable."""
    errors: dict[str, list[str]] = {}
    if not isinstance(template.variables, list) or not all(isinstance(v, str) for v in template.variables):
        errors["variables"] = ["must be a list of variable names"]
        raise ValidationError(errors)
    bad = [v for v in template.variables if v.removeprefix("custom.").split(".")[0] in KNOWN]
    if bad:
        errors["variables"] = [f"'{v}' is a built-in variable; declare only custom ones" for v in bad]
    for field in TEXT_FIELDS:
        engine = HTML_ENGINE if field == "html" else TEXT_ENGINE
        try:
            unknown = unknown_variables(getattr(template, field), template.variables, engine)
        except TemplateSyntaxError as exc:
            errors.setdefault(field, []).append(f"invalid template: {exc}")
            continue
        for name in unknown:
            errors.setdefault(field, []).append(
                f"unknown variable '{name}'; known: {', '.join(sorted(KNOWN))}, and custom variables declared in "
                f"'variables'")
    if not (template.html or "").strip():
        errors.setdefault("html", []).append("is required")
    _validate_variants(template, errors)
    if errors:
        raise ValidationError(errors)


VARIANT_KEYS = ("name", "weight", "subject", "html", "text")
MAX_VARIANTS = 10


def _validate_variants(template: EmailTemplate, errors: dict) -> None:
    variants = template.variants if template.variants is not None else []
    if not isinstance(variants, list):
        errors["variants"] = ["must be a list of {name, weight, subject?, html?, text?}"]
        return
    if len(variants) > MAX_VARIANTS:
        errors["variants"] = [f"at most {MAX_VARIANTS} variants"]
        return
    names, total = set(), 0.0
    for index, variant in enumerate(variants):
        where = f"variants[{index}]"
        if not isinstance(variant, dict):
            errors.setdefault(where, []).append("must be an object {name, weight, subject?, html?, text?}")
            continue
        unknown = sorted(set(variant) - set(VARIANT_KEYS))
        if unknown:
            errors.setdefault(where, []).append(f"unknown key '{unknown[0]}'; known: {', '.join(VARIANT_KEYS)}")
        name = variant.get("name")
        if not isinstance(name, str) or not name.strip() or len(name) > 32:
            errors.setdefault(f"{where}.name", []).append("is required (at most 32 characters)")
        elif name in names:
            errors.setdefault(f"{where}.name", []).append(f"'{name}' is used by another variant")
        else:
            names.add(name)
        weight = variant.get("weight", 1)
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not 0 <= weight <= 1_000_000:
            errors.setdefault(f"{where}.weight", []).append("must be a number from 0 to 1000000")
        else:
            total += weight
        for field in TEXT_FIELDS:
            if field not in variant:
                continue
            source = variant[field]
            if not isinstance(source, str) or (field != "text" and not source.strip()):
                errors.setdefault(f"{where}.{field}", []).append("must be a non-empty string")
                continue
            engine = HTML_ENGINE if field == "html" else TEXT_ENGINE
            try:
                unknown_names = unknown_variables(source, template.variables, engine)
            except TemplateSyntaxError as exc:
                errors.setdefault(f"{where}.{field}", []).append(f"invalid template: {exc}")
                continue
            for name_ in unknown_names:
                errors.setdefault(f"{where}.{field}", []).append(
                    f"unknown variable '{name_}'; known: {', '.join(sorted(KNOWN))}, and custom variables declared "
                    f"in 'variables'")
    if variants and total <= 0 and "variants" not in errors:
        errors["variants"] = ["at least one variant needs a weight above 0"]

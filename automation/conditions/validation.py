"""``validate``: a tree checked against a model when a rule is saved, not when it runs."""

from django.utils import timezone

from .errors import ConditionError
from .operands import Prepared, prepare
from .syntax import parse
from .tree import iter_leaves

# ``not_in`` may list values the field cannot hold (seed 003: deal stage not in won, lost, closed): they exclude
# nothing, and "not one of these" still reads right. Every other operator naming such a value could never be
# what was meant, so it is refused.
_CHOICE_OPERATORS = frozenset({"equals", "not_equals", "in", "changed_to", "changed_from"})


def validate(tree, model) -> None:
    """Raise ConditionError naming the first leaf whose field, operator or value does not fit ``model``.

    Beyond what evaluate and to_q refuse anyway (unknown or unsafe paths, operators that do not apply,
    values of the wrong type), values of choice fields must be among the choices, and engagement kinds
    and outcomes among theirs.
    """
    root, origins = parse(tree)
    now = timezone.now()
    for leaf in iter_leaves(root):
        try:
            p = prepare(leaf, model, now)
            if p.res is not None and p.res.virtual:
                _check_engagement_options(p)
            elif p.res is not None and p.op in _CHOICE_OPERATORS:
                _check_choices(p)
        except ConditionError as exc:
            raise exc.under(origins.path_of(leaf)) from None


def _check_choices(p: Prepared) -> None:
    choices = p.res.choices
    if not choices:
        return
    allowed = {choice.casefold() for choice in choices}  # text compares case-insensitively
    values = p.expected if isinstance(p.expected, list) else [p.expected]
    for i, value in enumerate(values):
        if value is not None and str(value).casefold() not in allowed:
            at = f"value[{i}]" if isinstance(p.expected, list) else "value"
            raise ConditionError(at, f"'{value}' is not a {p.res.path}; choose from {', '.join(choices)}.")


def _check_engagement_options(p: Prepared) -> None:
    related = p.res.reverse.related_model
    for key, column in (("kinds", "kind"), ("outcomes", "outcome")):
        allowed = [str(choice) for choice, _ in related._meta.get_field(column).flatchoices]
        for i, value in enumerate(p.options.get(key, [])):
            if allowed and value not in allowed:
                raise ConditionError(f"options.{key}[{i}]", f"'{value}' is not one of {', '.join(allowed)}.")

"""The friendly editors of a rule's JSON parts (trigger config, conditions, actions, rate limiting, retries) for the admin's forms: the
rule's (``rules``) and a SuccessPlay's (``playbooks.admin``). Their inputs come from the registries' schemas
(``automation.schemas``); what they post is checked by ``services.workflow_validate`` like the API's input, and
``show_error`` puts a complaint of the service next to the input it names.
"""

from __future__ import annotations

import re

from csplatform.schema_forms import DurationField, SchemaEditor, SchemaJSONField

from .. import schemas
from ..triggers import triggers

TRIGGER_FIELD = "trigger_type"
RULE_FIELDS_IN_CONFIG = ("model_type", "model")  # the form has its own model_type input


def trigger_config_field(**kwargs) -> SchemaJSONField:
    """The trigger's settings; the inputs shown are those of the type chosen in ``trigger_type``."""
    return SchemaJSONField(variants=schemas.trigger_config_schemas(), variant_field=TRIGGER_FIELD,
                           omit=RULE_FIELDS_IN_CONFIG, required=False, **kwargs)


def conditions_field(*, model: str | None = None, **kwargs) -> SchemaJSONField:
    """The condition tree; a condition's field offers the paths of ``model`` (``schemas.condition_fields``)."""
    field = SchemaJSONField(schemas.conditions_schema(), required=False, **kwargs)
    offer_condition_fields(field, model)
    return field


def offer_condition_fields(field, model: str | None) -> None:
    """Offer ``model``'s field paths in the condition inputs of ``field`` (any other path may still be typed)."""
    if isinstance(getattr(field, "widget", None), SchemaEditor):
        paths = schemas.condition_fields(model)
        field.widget.suggestions = {"field": paths} if paths else {}


def rate_limiting_field(**kwargs) -> SchemaJSONField:
    return SchemaJSONField(schemas.rate_limiting_schema(), required=False, **kwargs)


def retry_configuration_field(**kwargs) -> SchemaJSONField:
    return SchemaJSONField(schemas.retry_configuration_schema(), required=False, **kwargs)


def actions_field(**kwargs) -> SchemaJSONField:
    return SchemaJSONField(schemas.actions_schema(), required=False, **kwargs)


def trigger_choices() -> list[tuple[str, str]]:
    return [(name, name) for name in triggers.keys()]


def minutes_field(**kwargs) -> DurationField:
    return DurationField("minutes", integer=True, min_value=0, **kwargs)


EDITORS = {"trigger_config": trigger_config_field, "conditions": conditions_field, "actions": actions_field,
           "rate_limiting": rate_limiting_field, "retry_configuration": retry_configuration_field}


class EditorsFormMixin:
    """For a ModelForm with JSON rule parts: edits them with the friendly editors (made when the form is, so
    triggers and actions other apps register are there), shows the chosen trigger's inputs, and puts errors next
    to the input they name."""

    def use_editors(self, *names: str) -> None:
        for name in names:
            old = self.fields.get(name)
            if old is None or old.disabled:
                continue
            new = EDITORS[name](label=old.label, initial=old.initial)  # the model's help text is about JSON
            self.fields[name] = new
        self.show_selected_trigger()
        self.offer_subject_fields()

    def offer_subject_fields(self) -> None:
        """The condition inputs offer the fields of the rule's subject: the chosen model type, else the trigger's
        own subject (a webhook's conditions read its body: nothing to offer)."""
        field = self.fields.get("conditions")
        if field is None:
            return
        if self.is_bound:
            model, trigger = (self.data.get(self.add_prefix(name)) for name in ("model_type", TRIGGER_FIELD))
        else:
            model, trigger = (self.initial.get(name) or getattr(self.instance, name, "")
                              for name in ("model_type", TRIGGER_FIELD))
        registered = triggers.get(trigger) if trigger in triggers else None
        default = registered.subject_model if registered is not None else "account"
        offer_condition_fields(field, (model or default) if default else None)

    def show_selected_trigger(self) -> None:
        """The trigger type whose settings the editor shows: as posted, else the form's value."""
        field = self.fields.get("trigger_config")
        if field is None or not isinstance(field.widget, SchemaEditor):
            return
        if self.is_bound:
            chosen = self.data.get(self.add_prefix(TRIGGER_FIELD))
        else:
            chosen = self.initial.get(TRIGGER_FIELD) or getattr(self.instance, TRIGGER_FIELD, "")
        field.widget.selected = chosen or ""

    def show_error(self, key: str | None, text: str) -> str | None:
        """Put ``text`` (about ``key``: ``actions[0].config.title``) next to its input; returns the form field
        that key belongs to (None: the form's own errors)."""
        if not key or key == "__all__":
            return None
        head = re.split(r"[.\[]", key, maxsplit=1)[0]
        if key == "trigger_config.model_type" and "model_type" in self.fields:
            return "model_type"
        field = self.fields.get(head)
        if field is None:
            return None
        if isinstance(field.widget, SchemaEditor):
            field.widget.add_error(key[len(head):], text)
        return head

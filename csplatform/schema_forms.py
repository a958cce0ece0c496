"""Form inputs made from a JSON schema: the admin edits JSON settings (a rule's trigger config, conditions and
actions, a play's thresholds, a journey step's conditions) as ordinary inputs instead of raw JSON.

``SchemaJSONField`` is a ``forms.JSONField`` whose widget, ``SchemaEditor``, renders the schema's inputs (text,
number, select for an enum, checkbox for a boolean, a duration as an amount and a unit shown in words, a list
of items with add and remove) on the server, and assembles the JSON from what is posted, so the form's
``clean`` and the service behind it see exactly what the API would get. Nothing here validates: the schema
only decides which inputs are offered, the owner's validation decides what is accepted, and the form puts its
errors next to the input they name (``SchemaEditor.add_error("actions[0].config.title", ...)``).

The raw JSON stays under "Advanced" (a ``<details>`` with the textarea, posted under the field's own name);
when it was edited, it wins over the inputs. A value the inputs cannot show (nested condition groups) is edited
there only. ``static/csplatform/schema_forms.js`` adds and removes list items and swaps the inputs when a type
is chosen; without it, removing works (a checkbox) and a new type's inputs appear after saving.

Inputs are named ``<field>__<path>``: ``actions__0.@create_task.config.title`` (``@type``: the variant whose
inputs these are, so a changed type never reads another type's inputs); errors use the JSON path
(``0.config.title``).
"""

from __future__ import annotations

import json
from decimal import Decimal, InvalidOperation

from django import forms
from django.template.loader import render_to_string
from django.utils.safestring import mark_safe

from .schema_inputs import (
    ABSENT, EDITOR, SHOWN, Builder, Reader, Unrepresentable, edited, error_path, kind_of, nearest, read_duration,
)


class SchemaEditor(forms.Widget):
    """The inputs of ``schema`` (or of ``variants[<the value of the form field variant_field>]``) and, under
    "Advanced", the JSON itself. The form sets ``selected`` (the variant shown) and calls ``add_error``."""

    template_name = "admin/widgets/schema_editor.html"

    class Media:
        js = ("csplatform/schema_forms.js",)
        css = {"all": ("csplatform/schema_forms.css",)}

    def __init__(self, schema: dict | None = None, *, variants: dict | None = None, variant_field: str = "",
                 omit=(), attrs=None):
        super().__init__(attrs)
        self.schema, self.variants, self.variant_field, self.omit = schema, variants or {}, variant_field, omit
        self.selected = ""
        self.errors: dict[str, list[str]] = {}
        self.input_errors: dict[str, str] = {}

    def add_error(self, key: str, message: str) -> None:
        """Show ``message`` next to the input of ``key`` (a path such as ``[0].config.title``)."""
        self.errors.setdefault(error_path(key), []).append(message)

    def _schema_and_path(self, variant: str) -> tuple[dict | None, str]:
        if self.schema is not None:
            return self.schema, ""
        return self.variants.get(variant), (f"@{variant}" if variant else "")

    def value_from_datadict(self, data, files, name):
        self.input_errors = {}
        raw = data.get(name)
        if not data.get(name + EDITOR) or (raw is not None and edited(raw, data.get(name + SHOWN))):
            return raw  # no inputs (a JSON-only client or value), or the advanced JSON was edited: it wins
        schema, npath = self._schema_and_path(data.get(self.variant_field) or "" if self.variant_field else "")
        if schema is None:
            return raw  # no inputs for that type (an unknown one): the JSON as it was
        reader = Reader(data, name, self.omit)
        value = (reader.object(schema, npath, "") if kind_of(schema) == "object"
                 else reader.items(schema, npath, "") if kind_of(schema) == "items" else reader.value(schema, npath, ""))
        self.input_errors = reader.errors
        return json.dumps([] if value is ABSENT else value, ensure_ascii=False)

    def get_context(self, name, value, attrs):
        context = super().get_context(name, value, attrs)
        raw = value if isinstance(value, str) else ("" if value is None else json.dumps(value))
        try:
            parsed, friendly, note = (json.loads(raw) if raw.strip() else None), True, ""
        except ValueError:
            parsed, friendly, note = None, False, "The JSON below does not parse: correct it there."
        schema, npath = self._schema_and_path(self.selected)
        root, templates = None, []
        builder = Builder(name, self.omit)
        if friendly and schema is not None:
            try:
                root = builder.node(schema, parsed, npath, "")
            except Unrepresentable as exc:
                friendly, note = False, f"These settings can only be edited as JSON ({exc})."
        if friendly and self.variants:
            for key, variant in self.variants.items():
                if key != self.selected:
                    node = Builder(name, self.omit).node(variant, None, f"@{key}", "")
                    templates.append({"key": key, "node": node})
        errors = {**self.errors, **{path: [text] for path, text in self.input_errors.items()}}
        for path, texts in errors.items():
            target = nearest(builder.paths, path)
            if target is not None:
                target["errors"] = [*target.get("errors", []), *texts]
        context["widget"].update(raw=raw, root=root, templates=templates, friendly=friendly, note=note,
                                 variant_field=self.variant_field, empty=friendly and root is None)
        return context

    def render(self, name, value, attrs=None, renderer=None):
        # The project's template engine (templates/admin/widgets/), not the form renderer's.
        return mark_safe(render_to_string(self.template_name, self.get_context(name, value, attrs)))


class SchemaJSONField(forms.JSONField):
    """JSON edited through a ``SchemaEditor``; what could not be read at all (bad JSON in an object input) is
    an error of the field, next to its input too."""

    def __init__(self, schema: dict | None = None, *, variants: dict | None = None, variant_field: str = "",
                 omit=(), **kwargs):
        kwargs["widget"] = SchemaEditor(schema, variants=variants, variant_field=variant_field, omit=omit)
        super().__init__(**kwargs)

    def prepare_value(self, value):
        if isinstance(value, forms.fields.InvalidJSONInput):
            return value
        return json.dumps(value, indent=2, ensure_ascii=False, cls=self.encoder)

    def validate(self, value):
        super().validate(value)
        if self.widget.input_errors:
            raise forms.ValidationError([f"{path}: {text}" if path else text
                                         for path, text in self.widget.input_errors.items()])


class DurationField(forms.DecimalField):
    """A number of ``unit`` (a model's ``delay_hours``, ``cooldown_minutes``) entered and shown as an amount
    and a unit, with the duration in words."""

    def __init__(self, unit: str = "hours", *, integer: bool = False, **kwargs):
        self.unit, self.integer = unit, integer
        kwargs.setdefault("widget", DurationInput(unit, integer=integer))
        kwargs.pop("max_digits", None), kwargs.pop("decimal_places", None)
        super().__init__(**kwargs)

    def clean(self, value):
        value = super().clean(value)
        if value is not None and self.integer:
            if value != value.to_integral_value():
                raise forms.ValidationError(f"Give a whole number of {self.unit}.", code="whole")
            return int(value)
        return value


class DurationInput(forms.Widget):
    template_name = "admin/widgets/schema_duration.html"

    def __init__(self, unit: str = "hours", *, integer: bool = False, attrs=None):
        super().__init__(attrs)
        self.schema = {"type": "integer" if integer else "number", "x-duration": unit}

    class Media:
        js = ("csplatform/schema_forms.js",)
        css = {"all": ("csplatform/schema_forms.css",)}

    def value_from_datadict(self, data, files, name):
        if data.get(name + "__amount") is None:
            return data.get(name)  # a client posting the plain number
        value = read_duration(data, name, self.schema)
        return "" if value is None else str(value)

    def get_context(self, name, value, attrs):
        context = super().get_context(name, value, attrs)
        try:
            number = None if value in (None, "") else Decimal(str(value))
        except InvalidOperation:
            number = None
        node = Builder("", ()).field("duration", self.schema, number if number is not None else (value or None),
                                      "", "", False)
        node.update(name=name, id=(attrs or {}).get("id", f"id_{name}"))
        context["node"] = node
        return context

    def render(self, name, value, attrs=None, renderer=None):
        return mark_safe(render_to_string(self.template_name, self.get_context(name, value, attrs)))



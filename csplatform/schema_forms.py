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
(``0.config.title``). An input's label is the schema's ``title``, else its name in words (``label_words``:
``dau_mau_threshold`` -> "DAU/MAU threshold", ``id_field`` -> "ID field", ``url`` -> "URL").
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

#: Words a field name spells in lower case that a CSM reads in capitals.
ACRONYMS = frozenset({"api", "arr", "bcc", "cc", "crm", "csat", "csm", "dau", "hmac", "html", "http", "https", "id",
                      "ip", "json", "mau", "mrr", "nps", "qbr", "sla", "sms", "smtp", "sso", "url", "utm", "uuid"})
PLURAL_ACRONYMS = {"ids": "IDs", "urls": "URLs"}
UNIT_SUFFIXES = {"ms": "(ms)", "pct": "(%)"}


def label_words(name: str) -> str:
    """A field or setting name as a label: ``dau_mau_threshold`` -> "DAU/MAU threshold", ``id_field`` ->
    "ID field", ``webhook_url`` -> "Webhook URL", ``duration_ms`` -> "Duration (ms)"."""
    words = [w for w in name.replace("-", "_").split("_") if w]
    shown: list[str] = []
    for index, word in enumerate(words):
        lower = word.lower()
        if lower == "mau" and shown and shown[-1] == "DAU":
            shown[-1] = "DAU/MAU"  # a ratio: "dau_mau" is DAU over MAU
        elif lower in ACRONYMS:
            shown.append(lower.upper())
        elif lower in PLURAL_ACRONYMS:
            shown.append(PLURAL_ACRONYMS[lower])
        elif lower in UNIT_SUFFIXES and index == len(words) - 1 and index > 0:
            shown.append(UNIT_SUFFIXES[lower])
        else:
            shown.append(lower)
    text = " ".join(shown)
    return text[:1].upper() + text[1:]


def titled(schema: dict | None) -> dict | None:
    """A copy of ``schema`` whose properties all have a ``title`` (``label_words`` of their name when they had
    none), so every input reads as words; nested objects, items and variants too. The original is left alone
    (registries share theirs)."""
    if not isinstance(schema, dict):
        return schema
    copy = dict(schema)
    if isinstance(schema.get("properties"), dict):
        copy["properties"] = {key: {"title": label_words(key), **(titled(sub) or {})}
                              if isinstance(sub, dict) else sub for key, sub in schema["properties"].items()}
    for key in ("items", "x-item"):
        if isinstance(schema.get(key), dict):
            copy[key] = titled(schema[key])
    for key in ("oneOf", "anyOf"):
        if isinstance(schema.get(key), list):
            copy[key] = [titled(option) for option in schema[key]]
    if isinstance(schema.get("$defs"), dict):
        copy["$defs"] = {key: titled(sub) for key, sub in schema["$defs"].items()}
    return copy


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
        self.schema, self.variant_field, self.omit = titled(schema), variant_field, omit
        self.variants = {key: titled(variant) for key, variant in (variants or {}).items()}
        self.selected = ""
        # Values to offer in a text input, by the setting's name (``{"field": [...]}``: a condition's field).
        self.suggestions: dict[str, list[str]] = {}
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
        datalists = self._offer_suggestions(name, [root, *(t["node"] for t in templates)])
        context["widget"].update(raw=raw, root=root, templates=templates, friendly=friendly, note=note,
                                 variant_field=self.variant_field, empty=friendly and root is None, datalists=datalists)
        return context

    def _offer_suggestions(self, name: str, nodes: list) -> list[tuple[str, list[str]]]:
        """Link every text input of a suggested setting (by its last name: ``conditions.0.field`` -> ``field``)
        to a ``<datalist>`` of its values: offered, not imposed (anything else may still be typed)."""
        if not self.suggestions:
            return []
        ids = {key: f"id_{name}__{key}__suggestions" for key in self.suggestions}
        stack = [node for node in nodes if node]
        while stack:
            node = stack.pop()
            if isinstance(node, list):
                stack.extend(node)
            elif isinstance(node, dict):
                key = str(node.get("name", "")).rsplit(".", 1)[-1]
                if node.get("kind") == "field" and node.get("input") == "text" and key in ids:
                    node["datalist"] = ids[key]
                stack.extend(value for value in node.values() if isinstance(value, (dict, list)))
        return [(ids[key], values) for key, values in self.suggestions.items()]

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



"""Small read-only displays and form fields the apps' admins share (pretty JSON, audit changes)."""

from __future__ import annotations

import json

from django import forms
from django.contrib import admin
from django.utils.html import format_html, format_html_join


def pretty_json(value):
    if value in (None, {}, []):
        return "-"
    text = json.dumps(value, indent=2, ensure_ascii=False, sort_keys=False, default=str)
    return format_html('<pre style="margin:0;white-space:pre-wrap;max-width:60em">{}</pre>', text)


def shown_value(value) -> str:
    """One audited value as a CSM reads it: text as it is, anything else as JSON, nothing as "-"."""
    if value is None:
        return "-"
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def changes_table(changes: dict | None):
    """An audit entry's ``{field: [before, after]}`` as a table of field, before and after."""
    if not changes:
        return "-"
    return format_html(
        "<table><thead><tr><th>Field</th><th>Before</th><th>After</th></tr></thead><tbody>{}</tbody></table>",
        format_html_join("", "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                         ((field, shown_value(pair[0]), shown_value(pair[1])) for field, pair in changes.items())),
    )


def json_display(field: str, description: str):
    """A read-only field of the admin showing the row's JSON ``field`` pretty-printed."""
    return admin.display(description=description)(lambda self, obj: pretty_json(getattr(obj, field)))


class PrettyJSONField(forms.JSONField):
    """JSON in a monospaced textarea, indented so a CSM can read and edit it."""

    def __init__(self, *args, **kwargs):
        kwargs["widget"] = forms.Textarea(attrs={"rows": 10, "cols": 90, "class": "vLargeTextField",
                                                  "style": "font-family:monospace", "spellcheck": "false"})
        super().__init__(*args, **kwargs)

    def prepare_value(self, value):
        if isinstance(value, forms.fields.InvalidJSONInput):
            return value
        return json.dumps(value, indent=2, ensure_ascii=False, cls=self.encoder)

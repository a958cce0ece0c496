"""Reading and writing the inputs of a JSON schema: ``Builder`` makes the nodes ``SchemaEditor``'s templates render
from a schema and a value, ``Reader`` assembles the value back from what the inputs posted (its mirror). No
validation: a value the inputs cannot hold is passed on as typed, for the owner's validation to name.
See ``csplatform.schema_forms``.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal, InvalidOperation

from .json_schema import TEXT_LETTER, UNITS, duration_words, to_seconds

EDITOR, SHOWN, EXTRA, REMOVE, WAS = "__editor", "__shown", "__extra", "__remove", "__was"
INDEX = "__INDEX__"
ABSENT = object()  # an input left empty: the key is left out
SIZES = ("seconds", "minutes", "hours", "days", "weeks")


class Unrepresentable(Exception):
    """The value has a shape the inputs cannot show (it is edited as JSON)."""


def _types(schema: dict) -> set[str]:
    kind = schema.get("type")
    return set(kind) if isinstance(kind, list) else ({kind} if kind else set())


def item_schema(schema: dict) -> dict:
    return schema.get("x-item") or schema.get("items") or {}


def kind_of(schema: dict) -> str:
    """Which input a schema gets."""
    if "const" in schema:
        return "const"
    if "x-duration" in schema:
        return "duration"
    if "x-list-when" in schema:
        return "value"  # a condition's value: text, a number, true/false, or a list of them
    if "enum" in schema:
        return "select"
    if schema.get("x-one-or-many"):
        return "multiselect" if "enum" in schema["anyOf"][0] else "names"
    types = _types(schema)
    if "array" in types:
        items = item_schema(schema)
        if "enum" in items:
            return "multiselect"
        return "items" if ("oneOf" in items or "properties" in items) else "names"
    if "object" in types:
        return "object" if "properties" in schema else "json"
    if "boolean" in types:
        return "checkbox"
    if types & {"number", "integer"}:
        return "number"
    return "text" if "string" in types else "any"


def error_path(key: str) -> str:
    """``[0].config.title`` / ``conditions[1].value`` -> ``0.config.title`` / ``conditions.1.value``."""
    return re.sub(r"\[(\d+)\]", r".\1", key or "").strip(".")


def _label(name: str) -> str:
    return name.replace("_", " ").capitalize()


def _number(text: str, integer: bool):
    """A number input's value as a number; what is not one is passed on as typed (the validation says why)."""
    try:
        number = Decimal(text)
    except InvalidOperation:
        return text
    if not number.is_finite():
        return text
    if number == number.to_integral_value() and (integer or not re.search(r"[.eE]", text)):
        return int(number)
    return float(number)


def _finite(constant: str):
    raise ValueError(f"{constant} is not a JSON value")  # NaN and Infinity are text, not numbers


def _show_any(value) -> str:
    """Any JSON in one input: text as typed (quoted only when it would read as JSON), the rest as JSON."""
    if value is None:
        return ""
    if isinstance(value, str):
        try:
            json.loads(value, parse_constant=_finite)
        except ValueError:
            return value
    return json.dumps(value, ensure_ascii=False)


def _read_any(text: str):
    try:
        return json.loads(text, parse_constant=_finite)
    except ValueError:
        return text


def _duration_units(schema: dict) -> list[str]:
    stored = schema["x-duration"]
    if stored == "text":
        return ["minutes", "hours", "days", "weeks"]
    index = SIZES.index(stored)
    integer = "integer" in _types(schema)
    return list(SIZES[index if integer else max(index - 1, 0):])


def _split(seconds: Decimal, units: list[str]) -> tuple[str, str]:
    """Amount and unit to show: the largest offered unit giving a whole amount, else the smallest."""
    for unit in reversed(units):
        if seconds and seconds % UNITS[unit] == 0:
            return f"{(seconds / UNITS[unit]).normalize():f}", unit
    amount = seconds / UNITS[units[0]]
    return (f"{amount.normalize():f}" if seconds else "0"), units[0]


class Builder:
    """The nodes a template renders, from a schema and a value; ``paths`` maps JSON paths to their nodes."""

    def __init__(self, name: str, omit=()):
        self.name, self.omit, self.paths = name, set(omit), {}

    def input_name(self, npath: str) -> str:
        return f"{self.name}__{npath}"

    def node(self, schema: dict, value, npath: str, jpath: str, label: str = "", required: bool = False) -> dict:
        kind = kind_of(schema)
        if kind == "object":
            node = self.object(schema, value, npath, jpath)
        elif kind == "items":
            node = self.items(schema, value, npath, jpath, label)
        else:
            node = self.field(kind, schema, value, npath, label, required)
        node.setdefault("errors", [])
        self.paths.setdefault(jpath, node)
        return node

    def object(self, schema: dict, value, npath: str, jpath: str, skip=()) -> dict:
        if value is not None and not isinstance(value, dict):
            raise Unrepresentable(f"{jpath or 'the value'} is not an object")
        value = value or {}
        rows, shown = [], set()
        required = set(schema.get("required") or ())
        for key, sub in schema.get("properties", {}).items():
            if key in self.omit or key in skip or sub.get("deprecated"):
                continue  # kept as it is (below), e.g. an alias the value uses
            shown.add(key)
            rows.append(self.node(sub, value.get(key), _join(npath, key), _join(jpath, key),
                                  sub.get("title") or _label(key), key in required))
        extra = {k: v for k, v in value.items() if k not in shown and k not in skip}
        if extra and schema.get("x-closed"):
            raise Unrepresentable(f"{jpath or 'the value'} has keys the inputs do not offer: {', '.join(extra)}")
        return {"kind": "object", "rows": rows, "extra_name": self.input_name(_join(npath, EXTRA)),
                "extra": json.dumps(extra, ensure_ascii=False) if extra else ""}

    def items(self, schema: dict, value, npath: str, jpath: str, label: str) -> dict:
        if value is not None and not isinstance(value, list):
            raise Unrepresentable(f"{jpath or 'the value'} is not a list")
        item = item_schema(schema)
        rendered = []
        for index, entry in enumerate(value or []):
            allowed = set(item.get("properties", {}))
            if "properties" in item and (not isinstance(entry, dict) or set(entry) - allowed):
                raise Unrepresentable(f"item {index} of {jpath or 'the list'} has a nested group or unknown keys")
            rendered.append(self.item(item, entry, _join(npath, str(index)), _join(jpath, str(index)), index))
        template = Builder(self.name, self.omit).item(item, None, _join(npath, INDEX), _join(jpath, INDEX), INDEX)
        title = item.get("title") or "item"
        return {"kind": "items", "label": label, "items": rendered, "template": template,
                "was_name": self.input_name(_join(npath, WAS)), "was": "absent" if value is None else "present",
                "next_index": len(rendered), "add_label": f"Add {'an' if title[0] in 'aeiou' else 'a'} {title}"}

    def item(self, schema: dict, value, npath: str, jpath: str, index) -> dict:
        if "oneOf" in schema:
            node = self.variant(schema, value, npath, jpath)
        else:
            node = self.node(schema, value, npath, jpath)
        return {"node": node, "index": index, "remove_name": self.input_name(_join(npath, REMOVE))}

    def variant(self, schema: dict, value, npath: str, jpath: str) -> dict:
        """One of several object schemas told apart by the constant of ``x-discriminator`` (an action's type)."""
        key = schema["x-discriminator"]
        options = {option["properties"][key]["const"]: option for option in schema["oneOf"]}
        chosen = (value or {}).get(key) if isinstance(value, dict) else None
        if value is not None and (not isinstance(value, dict) or chosen not in options):
            raise Unrepresentable(f"{jpath}: unknown {key} {chosen!r}")
        selector = self.field("select", {"enum": list(options)}, chosen, _join(npath, key), _label(key), True,
                              blank="(choose)")
        selector["variant_select"] = True
        self.paths[_join(jpath, key)] = selector
        panels = {}
        for option_key, option in options.items():
            builder = self if option_key == chosen else Builder(self.name, self.omit)
            panels[option_key] = builder.object(option, value if option_key == chosen else None,
                                                _join(npath, f"@{option_key}"), jpath, skip=(key,))
        return {"kind": "variant", "selector": selector, "panel": panels.get(chosen),
                "templates": [{"key": k, "node": n} for k, n in panels.items()], "errors": []}

    def field(self, kind: str, schema: dict, value, npath: str, label: str, required: bool, blank: str = "") -> dict:
        """One input. A value it could not show as it is raises ``Unrepresentable``: it is never dropped quietly."""
        name = self.input_name(npath)
        node = {"kind": "field", "input": kind, "name": name, "id": "id_" + re.sub(r"[^\w-]", "_", name),
                "label": label, "required": required, "help": schema.get("description", ""),
                "template": bool(schema.get("x-template"))}
        nullable = "null" in _types(schema) or None in schema.get("enum", ())
        if kind == "const":
            node["value"] = schema["const"]
        elif kind == "select":
            default = schema.get("default")
            blank = blank or ("(default: %s)" % default if default is not None else ("(off)" if nullable else "-"))
            node["choices"] = [("", blank, value is None)] + [
                (str(v), str(v), value is not None and str(v) == str(value)) for v in schema["enum"] if v is not None]
            if value is not None and str(value) not in {str(v) for v in schema["enum"]}:
                node["choices"].append((str(value), f"{value} (not a choice)", True))  # kept, for the check to name
        elif kind == "multiselect":
            choices = (schema["anyOf"][0] if schema.get("x-one-or-many") else item_schema(schema))["enum"]
            chosen = {str(v) for v in (value if isinstance(value, list) else [value] if value is not None else [])}
            strangers = sorted(chosen - {str(v) for v in choices})
            node.update(choices=[(str(v), str(v), str(v) in chosen) for v in choices] + [
                (v, f"{v} (not a choice)", True) for v in strangers], size=min(len(choices), 6),
                was=self._shape(value, schema))
        elif kind == "names":
            values = value if isinstance(value, list) else [] if value is None else [value]
            if any("," in str(v) for v in values):
                raise Unrepresentable(f"{npath}: a name with a comma")
            node.update(value=", ".join(str(v) for v in values), was=self._shape(value, schema),
                        help=node["help"] or "Separate several with commas.")
        elif kind == "checkbox":
            if value is not None and not isinstance(value, bool):
                raise Unrepresentable(f"{npath}: {value!r} is not true or false")
            node.update(checked=value is True, was="absent" if value is None else json.dumps(bool(value)))
        elif kind == "number":
            if value is not None and (isinstance(value, bool) or not isinstance(_number(str(value), False), (int, float))):
                node.update(input="text", value=str(value))  # not a number: shown as it is, for the check to name
                return node
            shown = int(value) if isinstance(value, float) and value.is_integer() else value
            node.update(value="" if value is None else _show_any(shown), minimum=schema.get("minimum"),
                        maximum=schema.get("maximum"), integer="integer" in _types(schema))
        elif kind == "duration":
            units = _duration_units(schema)
            stored = schema["x-duration"]
            seconds = to_seconds(value, "seconds" if stored == "text" else stored)
            if value not in (None, "") and seconds is None:
                node.update(input="text", value=str(value))  # not a duration: shown as it is
            else:
                empty = ("", stored if stored in units else "days")
                amount, unit = _split(seconds, units) if seconds is not None else empty
                node.update(amount=amount, unit=unit, units=units, stored=stored,
                            words=duration_words(value, "seconds" if stored == "text" else stored)
                            if value not in (None, "") else "")
        elif kind == "value":
            simple = isinstance(value, list) and all(
                isinstance(v, (str, int, float)) and not isinstance(v, bool) and "," not in str(v) for v in value)
            node["value"] = ", ".join(_show_any(v) for v in value) if simple else _show_any(value)
        elif kind in ("json", "any"):
            node["value"] = "" if value is None else (
                json.dumps(value, ensure_ascii=False) if kind == "json" else _show_any(value))
        else:
            if value is not None and not isinstance(value, (str, int, float)):
                raise Unrepresentable(f"{npath}: not text")
            node["value"] = "" if value is None else str(value)
        return node

    @staticmethod
    def _shape(value, schema: dict) -> str:
        if not schema.get("x-one-or-many"):
            return ""
        return "list" if isinstance(value, list) else "one"


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


class Reader:
    """The value the inputs of a schema posted (the mirror of ``Builder``); ``errors`` are inputs that could not
    be read at all (JSON that does not parse where an object belongs), by JSON path."""

    def __init__(self, data, name: str, omit=()):
        self.data, self.name, self.omit, self.errors = data, name, set(omit), {}

    def get(self, npath: str, suffix: str = ""):
        return self.data.get(f"{self.name}__{npath}{suffix}")

    def value(self, schema: dict, npath: str, jpath: str, siblings=None):
        kind = kind_of(schema)
        if kind == "object":
            return self.object(schema, npath, jpath)
        if kind == "items":
            return self.items(schema, npath, jpath)
        nullable = "null" in _types(schema) or None in schema.get("enum", ())
        empty = None if nullable else ABSENT
        if kind == "checkbox":
            if self.get(npath) is not None:
                return True
            was = self.get(npath, WAS)
            return ABSENT if was in (None, "absent") else False
        if kind == "multiselect":
            getlist = getattr(self.data, "getlist", lambda key: self.data.get(key) or [])
            chosen = getlist(f"{self.name}__{npath}")
            options = (schema["anyOf"][0] if schema.get("x-one-or-many") else item_schema(schema))["enum"]
            values = [next((v for v in options if str(v) == c), c) for c in chosen]
            return self._one_or_many(values, schema, npath)
        if kind == "duration":
            return self.duration(schema, npath, empty)
        text = self.get(npath)
        if text is None:
            return ABSENT
        if kind == "const":
            return schema["const"]
        if text.strip() == "":
            return empty
        if kind == "select":
            return next((v for v in schema["enum"] if v is not None and str(v) == text), text)
        if kind == "number":
            return _number(text.strip(), "integer" in _types(schema))
        if kind == "names":
            items = item_schema(schema) if not schema.get("x-one-or-many") else schema["anyOf"][0]
            numbers = bool(_types(items) & {"integer", "number"})
            values = [_number(part.strip(), True) if numbers else part.strip()
                      for part in text.split(",") if part.strip()]
            return self._one_or_many(values, schema, npath)
        if kind == "json":
            try:
                return json.loads(text, parse_constant=_finite)
            except ValueError as exc:
                self.errors[jpath] = f"not valid JSON ({exc})"
                return text
        if kind in ("any", "value"):
            operator = (siblings or {}).get("operator")
            if operator in (schema.get("x-absent-when") or {}).get("operator", ()):
                return ABSENT
            if operator in (schema.get("x-list-when") or {}).get("operator", ()) and not text.strip().startswith("["):
                return [_read_any(part.strip()) for part in text.split(",") if part.strip()]
            return _read_any(text.strip())
        return text

    def _one_or_many(self, values: list, schema: dict, npath: str):
        if not values:
            return ABSENT
        if schema.get("x-one-or-many") and len(values) == 1 and self.get(npath, WAS) != "list":
            return values[0]
        return values

    def duration(self, schema: dict, npath: str, empty):
        amount, unit = self.get(npath, "__amount"), self.get(npath, "__unit")
        if amount is None:
            text = self.get(npath)  # a value that was not a duration, shown as text
            return ABSENT if text is None else (text.strip() or empty)
        amount = amount.strip()
        if not amount:
            return empty
        stored = schema["x-duration"]
        if unit not in UNITS:
            unit = "hours"
        if stored == "text":
            return f"{amount}{TEXT_LETTER.get(unit, 'h')}"
        number = _number(amount, False)
        if not isinstance(number, (int, float)):
            return number
        value = Decimal(str(number)) * UNITS[unit] / UNITS[stored]
        return int(value) if value == value.to_integral_value() else float(round(value, 6))

    def object(self, schema: dict, npath: str, jpath: str, skip=()) -> dict:
        extra = self.get(_join(npath, EXTRA))
        try:
            result = json.loads(extra) if extra else {}
        except ValueError:
            result = {}
        result = result if isinstance(result, dict) else {}
        for key, sub in schema.get("properties", {}).items():
            if key in self.omit or key in skip or sub.get("deprecated"):
                continue
            value = self.value(sub, _join(npath, key), _join(jpath, key), siblings=result)
            if value is not ABSENT:
                result[key] = value
        return result

    def items(self, schema: dict, npath: str, jpath: str) -> list:
        prefix = f"{self.name}__{_join(npath, '')}" if npath else f"{self.name}__"
        found = {int(m.group(1)) for key in self.data.keys()
                 if (m := re.match(re.escape(prefix) + r"(\d+)\.", key))}
        item, values = item_schema(schema), []
        for index in sorted(found):
            here, there = _join(npath, str(index)), _join(jpath, str(len(values)))
            if self.get(_join(here, REMOVE)):
                continue
            if "oneOf" in item:
                value = self.variant(item, here, there)
            else:
                value = self.value(item, here, there)
            if value not in (ABSENT, {}, None):
                values.append(value)
        if not values and self.get(_join(npath, WAS)) == "absent":
            return ABSENT  # an empty list where there was none: still none
        return values

    def variant(self, schema: dict, npath: str, jpath: str):
        key = schema["x-discriminator"]
        chosen = (self.get(_join(npath, key)) or "").strip()
        if not chosen:
            return ABSENT
        option = next((o for o in schema["oneOf"] if o["properties"][key]["const"] == chosen), None)
        if option is None:
            return {key: chosen}
        return {key: chosen, **self.object(option, _join(npath, f"@{chosen}"), jpath, skip=(key,))}


def nearest(paths: dict, path: str):
    """The node of ``path`` or of its nearest ancestor that has one (``value.1`` -> ``value``)."""
    parts = path.split(".") if path else []
    while parts:
        node = paths.get(".".join(parts))
        if node is not None:
            return node
        parts.pop()
    return None


def edited(raw: str, shown) -> bool:
    if shown is None:
        return True
    try:
        return json.loads(raw) != json.loads(shown)
    except ValueError:
        return raw.replace("\r\n", "\n").strip() != str(shown).replace("\r\n", "\n").strip()


class OneInput(Reader):
    """Reads the inputs of one form field (``<name>__amount``), not of a path inside an editor."""

    def get(self, npath: str, suffix: str = ""):
        return self.data.get(f"{self.name}{suffix}")


def read_duration(data, name: str, schema: dict):
    return OneInput(data, name).duration(schema, "", None)

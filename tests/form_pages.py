"""What a browser without JavaScript posts from an admin page: the inputs of its form with their values as
rendered (checked boxes, selected options, textareas); nothing inside <template> elements (the editors' item
and type templates, which only the page's script brings to life)."""

from __future__ import annotations

from html.parser import HTMLParser


class _FormInputs(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.pairs: list[tuple[str, str]] = []
        self.templates = 0
        self.select: tuple[str, bool] | None = None  # (name, multiple)
        self.options: list[tuple[str, bool]] = []
        self.option_value: str | None = None
        self.textarea: str | None = None
        self.text = ""

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "template":
            self.templates += 1
        if self.templates:
            return
        name = attrs.get("name")
        if tag == "input" and name and attrs.get("type") not in ("submit", "button", "file"):
            if attrs.get("type") in ("checkbox", "radio"):
                if "checked" in attrs:
                    self.pairs.append((name, attrs.get("value", "on")))
            else:
                self.pairs.append((name, attrs.get("value") or ""))
        elif tag == "select" and name:
            self.select, self.options = (name, "multiple" in attrs), []
        elif tag == "option" and self.select:
            self.options.append((attrs.get("value", ""), "selected" in attrs))
        elif tag == "textarea" and name:
            self.textarea, self.text = name, ""

    def handle_endtag(self, tag):
        if tag == "template":
            self.templates -= 1
        if self.templates:
            return
        if tag == "select" and self.select:
            name, multiple = self.select
            chosen = [value for value, selected in self.options if selected]
            if not chosen and not multiple and self.options:
                chosen = [self.options[0][0]]
            self.pairs.extend((name, value) for value in chosen)
            self.select = None
        elif tag == "textarea" and self.textarea:
            self.pairs.append((self.textarea, self.text[1:] if self.text.startswith("\n") else self.text))
            self.textarea = None

    def handle_data(self, data):
        if self.textarea and not self.templates:
            self.text += data


def form_inputs(html: str) -> dict:
    """``{name: value}`` (a list for a name posted several times) of what the page's form would post."""
    parser = _FormInputs()
    parser.feed(html)
    data: dict = {}
    for name, value in parser.pairs:
        if name in data:
            data[name] = [*data[name], value] if isinstance(data[name], list) else [data[name], value]
        else:
            data[name] = value
    data.pop("csrfmiddlewaretoken", None)
    return data

"""The action type's base: ``Action``, the ``actions`` registry and ``register``, the ``ActionContext`` a
run gives each action, ``ActionError``, and the template helpers every action shares (``render``,
``check_template``, their JSON forms) in the sandbox (``csplatform.sandbox``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from django.template import Context, TemplateSyntaxError

from accounts.models import Account
from csplatform.registry import Registry
from csplatform.sandbox import MAX_RENDERED, sandbox_engine
from delivery.services import outbox_enqueue

from ..triggers import ConfigError
from ..variables import template_variables


class ActionError(Exception):
    """The action could not do its work; the message is recorded on the run step."""


class ActionRefused(ActionError):
    """The action refused before writing anything (e.g. a journey's re-entry rule): the step fails with the
    message, and the engine need not roll back and redo a savepoint-free batch for it."""


@dataclass
class ActionContext:
    tenant: Any
    workflow: Any
    run: Any
    account: Account | None
    subject: Any
    event_payload: dict = field(default_factory=dict)
    extra: dict = field(default_factory=dict)
    position: int | None = None  # index of the running action in the rule (set by the engine)
    steps: list = field(default_factory=list)  # this run's finished steps so far (saved when the batch ends)
    batch: Any = None  # the engine's ``automation.batch.Batch``: where runs, steps and messages are recorded
    messages: list = field(default_factory=list)  # outbox messages the running action wrote (linked to its step)
    fire: Any = None  # the engine's ``fire`` (passed in: the engine imports this package), for trigger_workflow
    memo: dict = field(default_factory=dict)  # what the run's templates read once (its contact)

    def enqueue(self, **fields):
        """Write one outbox message for this run (``delivery.services.outbox_enqueue``) and note it for the
        running step. A message whose key is new waits for the batch's end (it gets its id now)."""
        run_id = self.run.pk if self.run is not None else None
        message = outbox_enqueue(tenant=self.tenant, run_id=run_id, defer=self.batch.defer if self.batch else None,
                                 **fields)
        self.messages.append(message)
        return message

    def take_messages(self) -> list:
        """The messages written since the last call, and forget them (the engine links them to the step)."""
        taken, self.messages = self.messages, []
        return taken

    def template_context(self, text: str = "") -> dict:
        """The variables for rendering ``text`` (``automation.variables``): plain data only."""
        return template_variables(self, text)


_templates = sandbox_engine()


@lru_cache(maxsize=1024)
def _compiled(text: str):
    """A rule's templates are few and rendered once per run: parse each once per process (a compiled
    Template keeps no state between renders)."""
    return _templates.from_string(text)


def render(text: str, ctx: ActionContext) -> str:
    # No HTML escaping (the Context decides that, not the Engine): these are JSON bodies, titles, notes.
    # A plain str, not the SafeString templates return: a value rendered here and then used in an HTML
    # email must still be escaped there.
    context = Context(ctx.template_context(text or ""), autoescape=False)
    rendered = str.__str__(_compiled(text or "").render(context))
    if len(rendered) > MAX_RENDERED:
        raise ActionError(f"a template rendered to {len(rendered)} characters (at most {MAX_RENDERED})")
    return rendered


def check_template(text: str, field_name: str) -> None:
    if "{%" in (text or ""):
        raise ConfigError(field_name, "only {{ variables }} are allowed, not {% tags %}")
    try:
        _templates.from_string(text or "")
    except TemplateSyntaxError as exc:
        raise ConfigError(field_name, f"invalid template: {exc}") from None


class Action:
    type = ""
    required: tuple[str, ...] = ()
    templated: tuple[str, ...] = ()
    aliases: dict[str, str] = {}  # seed 003's names for the same settings
    known: tuple[str, ...] | None = None  # every setting the action reads (with required, templated): others are refused
    # What a setting holds when it is not plain text (``csplatform.json_schema``; ``automation.schemas``).
    settings_schema: dict[str, dict] = {}
    needs_account = True

    def validate_config(self, config: dict) -> dict:
        config = dict(config or {})
        for alias, name in self.aliases.items():
            if alias in config and name not in config:
                config[name] = config.pop(alias)
        if self.known is not None:
            settings = dict.fromkeys((*self.required, *self.templated, *self.known))
            unknown = sorted(set(config) - set(settings))
            if unknown:
                raise ConfigError(unknown[0], f"unknown setting; known: {', '.join(settings)}")
        for key in self.required:
            if config.get(key) in (None, ""):
                raise ConfigError(key, "is required")
        for key in self.templated:
            check_template(config.get(key, ""), key)
        return config

    def check_for_rule(self, config: dict, rule) -> None:
        """What can be known only with the rule (its tenant, trigger and model): raise ConfigError. Called
        after ``validate_config`` when a rule is saved; ``config`` is the validated config."""

    def run(self, config: dict, ctx: ActionContext) -> dict:  # pragma: no cover - abstract
        raise NotImplementedError


actions: Registry[Action] = Registry("action")


def register(cls):
    actions.register(cls.type)(cls())
    return cls


def render_json(value, ctx: ActionContext):
    """Render every string inside a JSON-like value (seed 003's templated bodies and mappings)."""
    if isinstance(value, str):
        return render(value, ctx)
    if isinstance(value, dict):
        return {str(k): render_json(v, ctx) for k, v in value.items()}
    if isinstance(value, list):
        return [render_json(v, ctx) for v in value]
    return value


def check_json_templates(value, field_name: str) -> None:
    if isinstance(value, str):
        check_template(value, field_name)
    elif isinstance(value, dict):
        for key, item in value.items():
            check_json_templates(item, f"{field_name}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            check_json_templates(item, f"{field_name}[{index}]")


def string_map(config: dict, key: str) -> dict:
    """Check an optional ``{name: template}`` setting (headers, personalization, a CRM mapping)."""
    value = config.get(key) or {}
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, (str, int, float)) for k, v in value.items()):
        raise ConfigError(key, "must be an object of names to strings")
    for name, item in value.items():
        check_template(str(item), f"{key}.{name}")
    return {k: str(v) for k, v in value.items()}

"""The OpenAPI schema's conventions, applied to every operation in one place (``DEFAULT_SCHEMA_CLASS``).

* **Status codes**: besides what a view declares, each operation documents the errors the platform answers
  for it, in the shared ``Error`` / ``ValidationError`` shapes: 400 (a body, or query parameters to check),
  401 and 403 (authenticated views: no token; a role that may not, or a tenant the user is not a member of),
  404 (a path naming a row, or a page past the end), 409 (deleting a row that others still point at), 415 (a
  body in another media type) and 429 (throttled, with ``Retry-After``). ``tests/security/test_schemathesis.py``
  runs every check of schemathesis against the result, so a code the schema does not list fails there.
* **Request bodies** are documented as JSON only: the form parsers serve the browsable API's HTML forms, and a
  form cannot carry the ``null``s and nested objects the JSON shapes have. A view that reads its raw body
  (``openapi_raw_body = True``: the inbound webhooks) requires one, in any media type.
* **Fields**: a serializer's ``openapi_request_constraints(partial=...)`` and a field's
  ``openapi_schema(direction)`` add what drf-spectacular cannot see (``anyOf``, ``additionalProperties: false``,
  a registry's names as an ``enum``); decimals sent as text and text that is trimmed get patterns that match
  what they accept; django-filter's number filters their maximum.
* **Tags and summaries**: each operation is tagged with its area (``AREAS``, by URL) and gets a summary: the
  view's own (``extend_schema``), else the action and the model (``List accounts``, ``Update task``; a view's
  ``openapi_noun`` names its rows otherwise), else ``SUMMARIES``, else the first sentence of its docstring.
  Descriptions are the view's own docstring, never one inherited from a shared base class.
"""

from __future__ import annotations

import re

from django.core.validators import RegexValidator
from django.db import models
from drf_spectacular import openapi
from drf_spectacular.plumbing import ResolvedComponent, force_instance, get_doc, get_override, is_patched_serializer
from rest_framework import serializers
from rest_framework.permissions import AllowAny

API_PREFIX = "/api/"

# Tag, description, URL prefixes below /api/. Every operation belongs to one area
# (tests/security/test_openapi.py); a new URL prefix goes into one of them.
AREAS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("auth", "API tokens: log in with an email and password, revoke the token.", ("auth/",)),
    ("accounts", "Customer accounts and what hangs off them: contacts, deals, tags, journey stages and history, "
                 "engagements, goals, tasks, notes.",
     ("accounts/", "contacts/", "opportunities/", "tags/", "journey-stages/", "journey-history/", "engagements/",
      "goals/", "tasks/", "notes/")),
    ("health", "Health scores and the signals behind them: usage, surveys, support tickets.",
     ("health-scores/", "usage-metrics/", "surveys/", "tickets/")),
    ("tenant", "The tenant's settings (health weights, risk bands) and its audit trail.", ("tenant/", "audit-log/")),
    ("automation", "Rules: seed 001's workflows and seed 003's event triggers over one engine, their drafts, "
                   "versions and runs, and the inbound webhook that starts them.",
     ("admin/automation/", "event-triggers/", "hooks/")),
    ("playbooks", "Seed 000's playbook trigger settings and SuccessPlays with their executions.",
     ("playbook-triggers/", "playbooks/")),
    ("delivery", "What the platform sends and hears back: the outbox, email templates, signing secrets, "
                 "integration credentials, email engagement and bounce feedback.",
     ("outbox/", "email-templates/", "webhook-secrets/", "integration-credentials/", "email-events/",
      "suppressions/", "email-feedback/")),
    ("crm", "CRM journeys (seed 002): journeys, executions, discount codes and their statistics.", ("v1/crm/",)),
    ("billing", "Billing events into the journeys: generic events and the tenant's Stripe webhook.", ("billing/",)),
)
TAGS = tuple(tag for tag, _description, _prefixes in AREAS)

# Summaries no convention gives well, by operation id (used only when the view declares none).
SUMMARIES = {
    "accounts_journey_history_list": "Journey history of an account",
    "accounts_rollup_retrieve": "ARR-weighted health of an account and the accounts below it",
    "auth_token_create": "Log in: the API token of an email and password",
    "auth_token_revoke_create": "Revoke the caller's API token",
    "admin_automation_rotate_webhook_token_create": "Rotate the inbound webhook token of a workflow",
    "event_triggers_rotate_webhook_token_create": "Rotate the inbound webhook token of an event trigger",
    "billing_stripe_endpoint_retrieve": "The tenant's Stripe webhook endpoint",
    "billing_stripe_endpoint_create": "Set the Stripe signing secret (returned once)",
    "playbook_triggers_retrieve": "The tenant's playbook trigger settings",
    "playbook_triggers_create": "Save one playbook type's trigger settings",
    "playbook_triggers_test_create": "Test a playbook type's trigger settings, nothing saved",
    "playbook_triggers_evaluate_all_create": "Evaluate every enabled playbook trigger now",
    "playbook_triggers_history_retrieve": "Playbook trigger counters and latest evaluations",
    "playbooks_trigger_create": "Run a SuccessPlay for an account now",
    "v1_crm_discount_codes_redeem_create": "Redeem a discount code",
    "v1_crm_executions_convert_create": "Record a conversion of a CRM journey execution",
    "v1_crm_stats_retrieve": "CRM journey statistics",
    "tenant_retrieve": "The tenant's settings",
    "tenant_partial_update": "Update the tenant's settings",
}

ACTION_SUMMARIES = {
    "list": "List {plural}", "create": "Create {singular}", "retrieve": "Get {singular}",
    "update": "Replace {singular}", "partial_update": "Update {singular}", "destroy": "Delete {singular}",
}

ERROR_SCHEMA = {
    "type": "object",
    "properties": {"detail": {"type": "string"}},
    "required": ["detail"],
    "description": "What went wrong, in ``detail``; some answers add fields (``protected_by``, ``managed_by``).",
}
VALIDATION_ERROR_SCHEMA = {
    "oneOf": [
        {"type": "object", "additionalProperties": {},
         "description": "Each field that is wrong with its messages (``non_field_errors`` for the whole body; "
                        "``detail`` when the body could not be read)."},
        {"type": "array", "items": {"type": "string"}, "description": "Messages about the request as a whole."},
    ],
}
ERRORS = {  # status -> (description, component)
    "400": ("The request is invalid: the answer names each field and what is wrong with it.", "ValidationError"),
    "401": ("No credentials, or a token that is not valid.", "Error"),
    "403": ("Your role does not allow this, or X-Tenant-ID names a tenant you are not a member of.", "Error"),
    "404": ("Not found: no such row in this tenant (or a page past the last one).", "Error"),
    "409": ("Conflicts with the current state: e.g. other rows still point at this one (protected_by).", "Error"),
    "415": ("The body is not JSON (send Content-Type: application/json).", "Error"),
    "429": ("Too many requests: retry after the number of seconds in Retry-After.", "Error"),
}
COMPONENTS = {"Error": ERROR_SCHEMA, "ValidationError": VALIDATION_ERROR_SCHEMA}
PAGE_PARAMETERS = frozenset({"page", "page_size", "limit"})
# DRF trims text before it checks it, so spaces alone are blank: Python's whitespace, which besides the schema
# regex's \s (ECMA) includes the information separators \x1c-\x1f and NEL \x85, and not the BOM \ufeff.
NOT_ONLY_SPACES = r"[^\s\x1c-\x1f\x85]|\ufeff"


def area_of(path: str) -> str | None:
    relative = path[len(API_PREFIX):] if path.startswith(API_PREFIX) else path.lstrip("/")
    for tag, _description, prefixes in AREAS:
        if relative.startswith(prefixes):
            return tag
    return None


def deletion_can_conflict(model, seen: set | None = None) -> bool:
    """Whether deleting a ``model`` row can meet a PROTECT / RESTRICT foreign key, directly or through what it
    cascades to (``csplatform.api.exception_handler`` answers that with a 409)."""
    seen = set() if seen is None else seen
    if model in seen:
        return False
    seen.add(model)
    relations = [field for field in model._meta.get_fields(include_hidden=True)
                 if field.auto_created and not field.concrete and (field.one_to_many or field.one_to_one)]
    for relation in relations:
        on_delete = getattr(relation, "on_delete", None)
        if on_delete in (models.PROTECT, models.RESTRICT):
            return True
        if on_delete is models.CASCADE and deletion_can_conflict(relation.related_model, seen):
            return True
    return False


def decimal_pattern(field: serializers.DecimalField) -> str | None:
    """A pattern for a decimal sent as text that says what the field takes: at least one digit, no sign when
    it cannot be negative, and at most 10^n when that is its maximum (drf-spectacular's pattern lets "", "."
    and "-1" through for a field that refuses them). ``None``: keep drf-spectacular's."""
    places, whole = field.decimal_places, field.max_whole_digits
    if places is None or whole is None or places < 1:
        return None
    low, high = field.min_value, field.max_value
    if low is None or low < 0:
        return rf"^-?(?:\d{{1,{whole}}}(?:\.\d{{0,{places}}})?|\.\d{{1,{places}}})$" if high is None else None
    if low > 0:
        return None
    fraction = rf"(?:\.\d{{0,{places}}})?"
    if high is None:
        return rf"^(?:\d{{1,{whole}}}{fraction}|\.\d{{1,{places}}})$"
    digits = len(str(int(high))) - 1
    if high != 10 ** digits or digits > whole:
        return None
    below = rf"\d{{1,{digits}}}{fraction}|\.\d{{1,{places}}}" if digits else rf"0?{fraction}"
    return rf"^(?:{below}|1{'0' * digits}(?:\.0{{0,{places}}})?)$"


def first_sentence(doc: str) -> str:
    """The docstring's first sentence without reST markup, if it is short enough to be a summary."""
    text = " ".join(doc.split("\n\n", 1)[0].split()).replace("``", "")
    sentence = re.split(r"(?<=[a-z0-9)])[.;:] ", text + " ", maxsplit=1)[0].rstrip(". ")
    return sentence if 0 < len(sentence) <= 90 else ""


class AutoSchema(openapi.AutoSchema):
    """drf-spectacular's AutoSchema with the platform's conventions (module docstring)."""

    def get_operation(self, path, path_regex, path_prefix, method, registry):
        operation = super().get_operation(path, path_regex, path_prefix, method, registry)
        if operation is None:
            return None
        for parameter in operation.get("parameters", []):
            schema = parameter.get("schema", {})
            if parameter["in"] == "query" and parameter["name"] in PAGE_PARAMETERS and schema.get("type") == "integer":
                schema.setdefault("minimum", 1)
        if getattr(self.view, "openapi_raw_body", False) and "requestBody" in operation:
            operation["requestBody"]["required"] = True
        responses = operation["responses"]
        for code in sorted(self.error_codes(operation)):
            if code not in responses:
                responses[code] = self.error_response(code)
        return operation

    # --- status codes ---

    def error_codes(self, operation: dict) -> set[str]:
        view = self.view
        parameters = operation.get("parameters", [])
        codes = set()
        if "requestBody" in operation or any(p["in"] == "query" for p in parameters):
            codes.add("400")
        if "requestBody" in operation and not getattr(view, "openapi_raw_body", False):
            codes.add("415")
        if not all(issubclass(permission, AllowAny) for permission in view.permission_classes):
            codes.add("403")
            if view.authentication_classes:
                codes.add("401")
        if "{" in self.path or any(p["in"] == "query" and p["name"] == "page" for p in parameters):
            codes.add("404")
        model = self._model()
        if self.method == "DELETE" and model is not None and deletion_can_conflict(model):
            codes.add("409")
        if view.throttle_classes:
            codes.add("429")
        return codes

    def error_response(self, code: str) -> dict:
        description, name = ERRORS[code]
        component = ResolvedComponent(name=name, type=ResolvedComponent.SCHEMA, object=f"csplatform.openapi.{name}",
                                      schema=COMPONENTS[name])
        self.registry.register_on_missing(component)
        response = {"description": description, "content": {"application/json": {"schema": component.ref}}}
        if code == "429":
            response["headers"] = {"Retry-After": {"schema": {"type": "integer"},
                                                   "description": "Seconds to wait before the next request."}}
        return response

    # --- components ---

    def _map_serializer(self, serializer, direction, bypass_extensions=False):
        """A component's description is its serializer's own docstring, never a base class's; a serializer's
        ``openapi_request_constraints(partial=...)`` adds what its fields cannot say alone (``anyOf``,
        ``additionalProperties: false``) to its request component."""
        schema = super()._map_serializer(serializer, direction, bypass_extensions)
        serializer = force_instance(serializer)
        if "description" in schema and not type(serializer).__dict__.get("__doc__") \
                and get_override(serializer, "description", None) is None:
            del schema["description"]
        constraints = getattr(serializer, "openapi_request_constraints", None)
        if direction == "request" and constraints is not None:
            schema.update(constraints(partial=is_patched_serializer(serializer, direction)))
        return schema

    def _map_serializer_field(self, field, direction, bypass_extensions=False):
        """Decimals sent as text get a pattern that matches what they take (``decimal_pattern``); a field with an
        ``openapi_schema(direction)`` method adds what it returns (a registry's names as an ``enum``, read when
        the schema is made; ``nullable`` only in responses)."""
        schema = super()._map_serializer_field(field, direction, bypass_extensions)
        if isinstance(field, serializers.DecimalField) and schema.get("format") == "decimal" and "pattern" in schema:
            pattern = decimal_pattern(field)
            if pattern:
                schema["pattern"] = pattern
        if direction == "request" and schema is not None and schema.get("type") == "string" \
                and isinstance(field, serializers.CharField) and field.trim_whitespace and not field.allow_blank \
                and not {"pattern", "enum", "format"} & set(schema) \
                and not any(isinstance(validator, RegexValidator) for validator in field.validators):
            schema["pattern"] = NOT_ONLY_SPACES
        extra = getattr(field, "openapi_schema", None)
        if extra is not None and schema is not None:
            for key, value in extra(direction).items():  # None: leave the key out
                if value is None:
                    schema.pop(key, None)
                else:
                    schema[key] = value
        return schema

    def _get_filter_parameters(self):
        """django-filter's number filters refuse values over 1e50 (``NumberFilter.get_max_validator``)."""
        parameters = super()._get_filter_parameters()
        for parameter in parameters:
            schema = parameter.get("schema", {})
            if schema.get("type") in ("number", "integer") and "maximum" not in schema:
                schema["maximum"] = 1e50
        return parameters

    # --- request bodies ---

    def map_parsers(self):
        media_types = super().map_parsers()
        return ["application/json"] if "application/json" in media_types else media_types

    # --- tags, summaries, descriptions ---

    def get_tags(self):
        area = area_of(self.path)
        return [area] if area else super().get_tags()

    def get_summary(self):
        action = getattr(self.view, "action", None)
        noun = self._noun()
        if action in ACTION_SUMMARIES and noun:
            return ACTION_SUMMARIES[action].format(singular=noun[0], plural=noun[1])
        summary = SUMMARIES.get(self.get_operation_id())
        if summary:
            return summary
        handler = getattr(self.view, action or self.method.lower(), None)
        summary = first_sentence(get_doc(handler)) if handler is not None else ""
        return summary or f"{(action or self.method.lower()).replace('_', ' ').capitalize()} ({self.view_name()})"

    def _noun(self) -> tuple[str, str] | None:
        noun = getattr(self.view, "openapi_noun", None)
        if noun:
            return noun
        model = self._model()
        if model is None:
            return None
        return str(model._meta.verbose_name), str(model._meta.verbose_name_plural)

    def _model(self):
        """The model of the view's rows: its ``queryset``'s, else its serializer's."""
        model = getattr(getattr(self.view, "queryset", None), "model", None)
        serializer_class = getattr(self.view, "serializer_class", None)
        return model or getattr(getattr(serializer_class, "Meta", None), "model", None)

    def view_name(self) -> str:
        return re.sub(r"(?<!^)(?=[A-Z])", " ", type(self.view).__name__.removesuffix("View").removesuffix("ViewSet"))

    def get_description(self):
        action_or_method = getattr(self.view, getattr(self.view, "action", self.method.lower()), None)
        action_doc = get_doc(action_or_method) if action_or_method is not None else ""
        own_doc = type(self.view).__dict__.get("__doc__")
        return action_doc or (get_doc(type(self.view)) if own_doc else "")


def add_tag_descriptions(result, generator, request, public):
    """Postprocessing hook: the areas, in order, with their descriptions."""
    used = {tag for path in result.get("paths", {}).values() for operation in path.values()
            for tag in operation.get("tags", [])}
    result["tags"] = [{"name": tag, "description": description} for tag, description, _prefixes in AREAS
                      if tag in used]
    return result

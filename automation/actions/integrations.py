"""Actions that send to the tenant's connected tools (Slack, HubSpot, Salesforce), through the outbox as
every ``DeliveryAction``.
"""

from __future__ import annotations

from csplatform import json_schema as js

from ..triggers import ConfigError
from .base import check_json_templates, register, render, render_json, string_map
from .messaging import DELIVERY_SETTINGS, DeliveryAction


INTEGRATION_ACTIONS = {
    "slack": ("post_message", "send_message"),
    "hubspot": ("upsert", "create", "update"),
    "salesforce": ("upsert", "create", "update"),
}
CRM_DEFAULTS = {"hubspot": ("contacts", "email"), "salesforce": ("Contact", "Email")}


def _crm_message(integration: str, operation: str, obj: str | None, id_field: str | None, record_id, values: dict) -> dict:
    default_obj, default_id = CRM_DEFAULTS[integration]
    id_field = id_field or default_id
    if integration == "hubspot":
        payload = {"operation": operation, "id_property": id_field, "id": record_id, "properties": values}
    else:
        if operation == "upsert":
            values = {k: v for k, v in values.items() if k != id_field}  # Salesforce wants it in the URL only
        payload = {"operation": operation, "external_id_field": id_field, "id": record_id, "fields": values}
    return {"channel": integration, "target": obj or default_obj, "payload": payload,
            "method": "PATCH" if operation == "update" else "POST", "key": f"{integration}:{obj or default_obj}"}


@register
class IntegrationAction(DeliveryAction):
    """Seed 001's ``{integration, action, parameters}``: Slack ``post_message`` {channel, text, blocks};
    HubSpot/Salesforce ``upsert``/``create``/``update`` {object, properties (fields), id_property
    (external_id_field), id}. String parameters are templates."""

    type = "integration_action"
    required = ("integration", "action")
    known = ("parameters", *DELIVERY_SETTINGS)
    settings_schema = {**DeliveryAction.settings_schema, "integration": js.enum(INTEGRATION_ACTIONS),
                       "action": js.enum(sorted({a for names in INTEGRATION_ACTIONS.values() for a in names})),
                       "parameters": js.json_object()}

    def validate_config(self, config):
        config = super().validate_config(config)
        integration = config["integration"]
        if integration not in INTEGRATION_ACTIONS:
            raise ConfigError("integration", f"must be one of {', '.join(INTEGRATION_ACTIONS)}")
        if config["action"] not in INTEGRATION_ACTIONS[integration]:
            raise ConfigError("action", f"{integration} supports {', '.join(INTEGRATION_ACTIONS[integration])}")
        params = config.setdefault("parameters", {})
        if not isinstance(params, dict):
            raise ConfigError("parameters", "must be an object")
        check_json_templates(params, "parameters")
        if integration == "slack":
            for key in ("channel", "text"):
                if not params.get(key):
                    raise ConfigError(f"parameters.{key}", "is required")
        elif config["action"] == "update" and not params.get("id"):
            raise ConfigError("parameters.id", "is required to update a record")
        return config

    def run(self, config, ctx):
        integration = config["integration"]
        self._require_connected(ctx, integration)
        params = render_json(config.get("parameters") or {}, ctx)
        if integration == "slack":
            payload = {"text": params["text"], **({"blocks": params["blocks"]} if params.get("blocks") else {})}
            message = {"channel": "slack", "target": params["channel"], "payload": payload, "key": "slack"}
        else:
            values = params.get("properties") or params.get("fields") or {}
            message = _crm_message(integration, config["action"], params.get("object"),
                                   params.get("id_property") or params.get("external_id_field"), params.get("id"), values)
        return self._summary(self._enqueue(ctx, config, [message]))


@register
class SyncToExternal(DeliveryAction):
    """Seed 003's CRM sync: ``integration`` (salesforce/hubspot), ``mapping`` {CRM field: template},
    optional ``object`` and ``id_field`` (default Contact/Email, contacts/email). Upserts by the id
    field's mapped value; creates when it maps to nothing."""

    type = "sync_to_external"
    required = ("integration", "mapping")
    known = ("object", "id_field", *DELIVERY_SETTINGS)
    settings_schema = {**DeliveryAction.settings_schema, "integration": js.enum(CRM_DEFAULTS),
                       "mapping": js.json_object(description="CRM field -> template")}

    def validate_config(self, config):
        config = super().validate_config(config)
        if config["integration"] not in CRM_DEFAULTS:
            raise ConfigError("integration", f"must be one of {', '.join(CRM_DEFAULTS)}")
        if not isinstance(config["mapping"], dict) or not config["mapping"]:
            raise ConfigError("mapping", "must be a non-empty object of CRM field to template")
        string_map(config, "mapping")
        return config

    def run(self, config, ctx):
        integration = config["integration"]
        self._require_connected(ctx, integration)
        values = {field_name: render(str(t), ctx) for field_name, t in config["mapping"].items()}
        id_field = config.get("id_field") or CRM_DEFAULTS[integration][1]
        record_id = next((v for k, v in values.items() if k.lower() == id_field.lower() and v), None)
        operation = "upsert" if record_id else "create"
        message = _crm_message(integration, operation, config.get("object"), id_field, record_id, values)
        return {**self._summary(self._enqueue(ctx, config, [message])), "operation": operation}

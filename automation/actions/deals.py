"""``create_opportunity``: a play creates or updates the account's renewal or expansion opportunity (issue 13).

One open opportunity per account and kind: a renewal play firing again updates the open renewal instead of
adding another. Settings: ``kind`` (renewal, expansion, new; default renewal), ``name`` (``{{ }}`` allowed;
default "<account> renewal"), ``stage`` (an open stage; a new one starts at prospecting), ``value`` (a number, or
``"arr"``: the account's ARR), ``close_date`` (``"renewal_date"``: the account's, or an offset such as
``"+90d"``), ``probability`` (0-100), ``currency``. On an update only the settings given change.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from accounts.models import Opportunity
from csplatform import json_schema as js

from ..triggers import ConfigError
from .base import Action, ActionError, register, render
from .records import OFFSET, offset_date

OPEN_STAGES = [s for s in Opportunity.Stage.values if s not in Opportunity.CLOSED_STAGES]


@register
class CreateOpportunity(Action):
    type = "create_opportunity"
    templated = ("name",)
    known = ("kind", "stage", "value", "close_date", "probability", "currency")
    settings_schema = {"kind": js.enum(Opportunity.Kind.values), "stage": js.enum(OPEN_STAGES),
                       "value": js.text(description='A number, or "arr" (the account\'s ARR).'),
                       "close_date": js.text(description='"renewal_date" or an offset such as +90d.'),
                       "probability": js.integer(minimum=0, maximum=100), "currency": js.text(pattern="^[A-Za-z]{3}$")}

    def validate_config(self, config):
        config = super().validate_config(config)
        config.setdefault("kind", Opportunity.Kind.RENEWAL)
        if config["kind"] not in Opportunity.Kind.values:
            raise ConfigError("kind", f"must be one of {', '.join(Opportunity.Kind.values)}")
        if "stage" in config and config["stage"] not in OPEN_STAGES:
            raise ConfigError("stage", f"must be an open stage: {', '.join(OPEN_STAGES)}")
        value = config.get("value")
        if value not in (None, "arr"):
            try:
                if isinstance(value, bool) or Decimal(str(value)) < 0:
                    raise InvalidOperation
            except (InvalidOperation, ValueError):
                raise ConfigError("value", 'must be a non-negative number or "arr"') from None
        close = config.get("close_date")
        if close not in (None, "renewal_date") and not OFFSET.match(str(close)):
            raise ConfigError("close_date", 'must be "renewal_date" or an offset such as +90d or +4w')
        probability = config.get("probability")
        if probability is not None and (isinstance(probability, bool) or not isinstance(probability, int)
                                        or not 0 <= probability <= 100):
            raise ConfigError("probability", "must be a whole number from 0 to 100")
        currency = config.get("currency")
        if currency is not None and not (isinstance(currency, str) and len(currency) == 3 and currency.isalpha()):
            raise ConfigError("currency", "must be a three-letter code such as USD")
        return config

    def run(self, config, ctx):
        account = ctx.account
        if account is None:
            raise ActionError("create_opportunity needs an account and the run has none")
        fields = _fields(config, account, ctx)
        rows = Opportunity.objects.for_tenant(ctx.tenant)
        current = (rows.filter(account=account, kind=config["kind"]).exclude(stage__in=Opportunity.CLOSED_STAGES)
                   .order_by("pk").first())
        if current is None:
            fields.setdefault("name", f"{account.name} {config['kind']}")
            fields.setdefault("value", account.arr)
            fields.setdefault("close_date", account.renewal_date)
            current = Opportunity.objects.create(tenant_id=account.tenant_id, account=account, kind=config["kind"],
                                                 owner=account.owner, **fields)
            return {"opportunity_id": current.pk, "created": True}
        for name, value in fields.items():
            setattr(current, name, value)
        if fields:
            current.save(update_fields=[*fields, "updated_at"])  # a save: rules see the change
        return {"opportunity_id": current.pk, "created": False}


def _fields(config: dict, account, ctx) -> dict:
    fields = {}
    if config.get("name"):
        fields["name"] = render(config["name"], ctx)[:200] or f"{account.name} {config['kind']}"
    if "stage" in config:
        fields["stage"] = config["stage"]
    if config.get("value") == "arr":
        fields["value"] = account.arr
    elif config.get("value") is not None:
        fields["value"] = Decimal(str(config["value"]))
    close = config.get("close_date")
    if close == "renewal_date":
        if account.renewal_date is None:
            raise ActionError(f"account '{account.name}' has no renewal date for the opportunity's close date")
        fields["close_date"] = account.renewal_date
    elif close:
        fields["close_date"] = offset_date(close)
    for key in ("probability", "currency"):
        if config.get(key) is not None:
            fields[key] = config[key]
    return fields

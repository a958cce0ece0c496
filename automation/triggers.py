"""Trigger types: which events start a rule, and whether one event matches one rule's config.

A trigger is one small class with ``validate_config`` (normalise or raise ``ConfigError``) and
``matches``. ``listens_to`` names the event types (and model) it needs, which is what the per-tenant
rule index caches so that a save nobody listens to writes nothing.
"""

from __future__ import annotations

import re
from zoneinfo import available_timezones

from accounts.models import Account, Engagement, HealthScore, JourneyStage, RiskLevel
from csplatform import json_schema as js
from csplatform.registry import Registry

from .subjects import model_type_name
from .trigger_config import (  # noqa: F401 - ConfigError and parse_duration are imported from here
    ConfigError, any_of, choice, number, parse_duration, statuses, string_list,
)


class Trigger:
    type: str = ""
    event_types: tuple[str, ...] = ()
    subject_model: str | None = "account"  # what conditions are evaluated on, by default
    settings: dict[str, dict] = {}  # the trigger_config keys it reads, each with its JSON schema; others are refused

    def known(self, config: dict | None) -> dict:
        """A copy of ``config``; a key the trigger does not read is a ConfigError (never accepted and ignored)."""
        config = dict(config or {})
        unknown = sorted(set(config) - set(self.settings))
        if unknown:
            raise ConfigError(unknown[0], f"unknown setting; known: {', '.join(self.settings) or 'none'}")
        return config

    def validate_config(self, config: dict, model_type: str = "") -> tuple[dict, str]:
        """Return the normalised (config, model_type) or raise ConfigError."""
        return self.known(config), ""

    def check_for_rule(self, config: dict, rule) -> None:
        """What can be known only with the rule (its tenant): raise ConfigError. Called after validate_config."""

    def listens_to(self, config: dict, model_type: str) -> list[tuple[str, str]]:
        return [(event_type, model_type or self.subject_model or "") for event_type in self.event_types]

    def matches(self, config: dict, model_type: str, event) -> bool:
        return event.type in self.event_types


triggers: Registry[Trigger] = Registry("trigger")


def register(cls):
    triggers.register(cls.type)(cls())
    return cls


class ModelTrigger(Trigger):
    """Seed 003's model triggers; ``model_type`` names the model (``account``, ``accounts.Account``)."""

    settings = {"model_type": js.text(description="account, contact, ..."), "model": js.alias("model_type")}

    def validate_config(self, config, model_type=""):
        config = self.known(config)
        raw = model_type or config.pop("model_type", "") or config.pop("model", "")
        try:
            name = model_type_name(raw)
        except ValueError as exc:
            raise ConfigError("model_type", str(exc)) from None
        return config, name

    def listens_to(self, config, model_type):
        return [(event_type, model_type) for event_type in self.event_types]

    def matches(self, config, model_type, event):
        return event.type in self.event_types and event.model == model_type


@register
class ModelCreated(ModelTrigger):
    type = "model_created"
    event_types = ("model_created",)


@register
class AccountCreated(ModelTrigger):
    """Seed 001's ``account_created``: ``model_created`` on accounts. ``status`` (one value or a list): only
    accounts created with one of those statuses, or in one of those journey stages (seed 001's
    ``"onboarding"``). A new account without a stage is at the start of its journey: the tenant's first stage."""

    type = "account_created"
    event_types = ("model_created",)
    settings = {"status": js.many(js.text(), one_or_many=True, description="Statuses or journey stage names.")}

    def validate_config(self, config, model_type=""):
        config = self.known(config)
        if model_type and model_type_name_or_none(model_type) != "account":
            raise ConfigError("model_type", "account_created is about accounts; leave model_type out")
        if "status" in config:
            wanted = any_of(config["status"])
            if not wanted or not all(isinstance(v, str) and v.strip() for v in wanted):
                raise ConfigError("status", "must be an account status or a journey stage name, or a list of them")
        return config, "account"

    def check_for_rule(self, config, rule):
        stages = stage_names(rule.tenant_id)
        for value in any_of(config.get("status")):
            if value not in Account.Status.values and value.lower() not in stages:
                raise ConfigError("status", f"'{value}' is neither an account status ({', '.join(Account.Status.values)}) "
                                            f"nor a journey stage of this tenant ({', '.join(stages.values())})")

    def matches(self, config, model_type, event):
        wanted = any_of(config.get("status"))
        if not super().matches(config, model_type, event):
            return False
        if not wanted or event.payload.get("status") in wanted:
            return True
        stages = {v.lower() for v in wanted if v not in Account.Status.values}
        return bool(stages) and stage_at_creation(event) in stages


def model_type_name_or_none(value: str) -> str | None:
    try:
        return model_type_name(value)
    except ValueError:
        return None


def stage_names(tenant_id) -> dict[str, str]:
    """The tenant's journey stages, first first: {lower-case name: name}."""
    rows = JourneyStage.objects.for_tenant(tenant_id).order_by("order", "name").values_list("name", flat=True)
    return {name.lower(): name for name in rows}


def stage_at_creation(event) -> str | None:
    """The lower-case name of the journey stage a new account was created in (its tenant's first stage when it
    has none yet): one query, only for rules that filter on a stage."""
    stage_id = event.payload.get("current_stage")
    stages = JourneyStage.objects.for_tenant(event.tenant_id)
    stage = stages.filter(pk=stage_id) if stage_id else stages.order_by("order", "name")
    name = stage.values_list("name", flat=True).first()
    return name.lower() if name else None


@register
class ModelDeleted(ModelTrigger):
    type = "model_deleted"
    event_types = ("model_deleted",)


@register
class ModelUpdated(ModelTrigger):
    """Any update; ``fields`` (optional) narrows it to updates touching one of them;
    ``debounce_seconds`` (optional) makes a burst of updates one run after that much quiet."""

    type = "model_updated"
    event_types = ("model_updated",)
    settings = {**ModelTrigger.settings, "fields": js.many(js.text(), description="Only updates of these; empty = any."),
                "debounce_seconds": js.duration("seconds", minimum=1, maximum=86400, integer=True)}

    def validate_config(self, config, model_type=""):
        config, name = super().validate_config(config, model_type)
        config["fields"] = string_list(config, "fields")
        debounce = number(config, "debounce_seconds", minimum=1)
        if debounce is not None:
            if debounce > 86400:
                raise ConfigError("debounce_seconds", "must be at most 86400 (one day)")
            config["debounce_seconds"] = int(debounce)
        return config, name

    def matches(self, config, model_type, event):
        if not super().matches(config, model_type, event):
            return False
        fields = config.get("fields") or []
        return not fields or any(f in event.changes for f in fields)


@register
class FieldChanged(ModelUpdated):
    """A field changed, optionally ``from`` one value ``to`` another (seed 003's field_changed)."""

    type = "field_changed"
    settings = {**ModelUpdated.settings, "field": js.alias("fields"), "from": js.any_json(), "to": js.any_json(),
                "fields": js.many(js.text(), description="The fields watched; empty = those the conditions read.")}

    def validate_config(self, config, model_type=""):
        config = self.known(config)
        if config.get("field") and not config.get("fields"):
            config["fields"] = [config.pop("field")]
        config, name = super().validate_config(config, model_type)
        if not config["fields"]:
            raise ConfigError("field", "is required")
        return config, name

    def matches(self, config, model_type, event):
        if not super().matches(config, model_type, event):
            return False
        for field in config["fields"]:
            change = event.changes.get(field)
            if change is None:
                continue
            if "from" in config and str(change.get("old")) != str(config["from"]):
                continue
            if "to" in config and str(change.get("new")) != str(config["to"]):
                continue
            return True
        return False


@register
class HealthScoreChange(Trigger):
    """Seed 001: threshold, direction (increase/decrease/both), minimum_change, time_window.

    The change is measured against the previous score, or with ``time_window`` against the score at
    the start of the window (the event carries it). With a ``threshold`` a decrease must end below
    it and an increase at or above it (seed 004's "score < 40"); repeats are held back by cooldown.

    ``direction: "any"``: every recorded score, whatever the change (with ``risk_levels``: a band change
    can make an unchanged or rising score at risk). ``risk_levels`` (optional, e.g. ``["at_risk", "critical"]``): the new score's risk level must be one
    of them; with ``entering: true`` the previous score's must not (the level *becomes* one of them; a
    first score counts). The previous level is read from the event's ``previous_risk_level`` when it
    carries one, else from the previous score row (one query, only when the new level is one of them).
    """

    type = "health_score_change"
    event_types = ("health_score_change",)
    DIRECTIONS = ("decrease", "increase", "both", "any")
    settings = {"threshold": js.number(minimum=0), "direction": js.enum(DIRECTIONS), "minimum_change": js.number(minimum=0),
                "time_window": js.duration(), "risk_levels": js.many(js.enum(RiskLevel.values)), "entering": js.boolean()}

    def validate_config(self, config, model_type=""):
        config = self.known(config)
        threshold = number(config, "threshold", minimum=0)
        config["threshold"] = float(threshold) if threshold is not None else None
        config["direction"] = choice(config, "direction", self.DIRECTIONS, "decrease")
        config["minimum_change"] = float(number(config, "minimum_change", minimum=0) or 0)
        if config.get("time_window"):
            parse_duration(config["time_window"], "time_window")
        if "risk_levels" in config:
            levels = string_list(config, "risk_levels")
            if not levels or any(level not in RiskLevel.values for level in levels):
                raise ConfigError("risk_levels", f"must be a list of {', '.join(RiskLevel.values)}")
            config["risk_levels"] = levels
        if "entering" in config:
            if not isinstance(config["entering"], bool):
                raise ConfigError("entering", "must be true or false")
            if config["entering"] and not config.get("risk_levels"):
                raise ConfigError("entering", "needs risk_levels (the levels the score enters)")
        return config, ""

    def matches(self, config, model_type, event):
        current = event.payload.get("current_score")
        if event.type not in self.event_types or current is None:
            return False
        window = config.get("time_window")
        baseline = (event.payload.get("window_scores") or {}).get(window) if window else event.payload.get("previous_score")
        delta = current - baseline if baseline is not None else None
        minimum, threshold = config["minimum_change"], config.get("threshold")
        # Without a baseline (first score) only the threshold decides.
        down = delta is None or (delta < 0 and -delta >= minimum)
        up = delta is None or (delta > 0 and delta >= minimum)
        if threshold is not None:
            down, up = down and current < threshold, up and current >= threshold
        if config["direction"] != "any" and not {"decrease": down, "increase": up, "both": down or up}[config["direction"]]:
            return False
        levels = config.get("risk_levels")
        if levels and event.payload.get("risk_level") not in levels:
            return False
        return not (levels and config.get("entering") and previous_risk_level(event) in levels)


def previous_risk_level(event) -> str | None:
    """The risk level of the score before the one a ``health_score_change`` event recorded (None for a first
    score): the event's ``previous_risk_level`` if it carries it, else the previous row of the account's
    history (what ``health_score_recorded`` called ``previous``), remembered on the event."""
    payload = event.payload
    if "previous_risk_level" in payload:
        return payload["previous_risk_level"]
    if payload.get("previous_score") is None or not payload.get("health_score_id") or event.tenant_id is None:
        return None  # a first score (or an event that names no stored score)
    if not hasattr(event, "_previous_risk_level"):
        scores = HealthScore.objects.for_tenant(event.tenant_id)
        score = scores.filter(pk=payload.get("health_score_id")).values("account_id", "calculated_at").first()
        event._previous_risk_level = None if score is None else (
            scores.filter(account_id=score["account_id"], calculated_at__lte=score["calculated_at"])
            .exclude(pk=payload.get("health_score_id")).order_by("-calculated_at", "-id")
            .values_list("risk_level", flat=True).first())
    return event._previous_risk_level


@register
class StatusChange(Trigger):
    """An account's status changed. ``from_status`` / ``to_status``: one status or a list (any of them);
    ``entering: true`` leaves out a change between two of the ``to_status`` statuses (cancelled -> churned
    is not a second cancellation)."""

    type = "status_change"
    event_types = ("status_change",)
    settings = {"from_status": js.one_or_many(Account.Status.values), "to_status": js.one_or_many(Account.Status.values),
                "include_new_accounts": js.boolean(), "entering": js.boolean()}

    def validate_config(self, config, model_type=""):
        config = self.known(config)
        for key in ("from_status", "to_status"):
            statuses(config, key)
        config["include_new_accounts"] = bool(config.get("include_new_accounts", False))
        if "entering" in config:
            if not isinstance(config["entering"], bool):
                raise ConfigError("entering", "must be true or false")
            if config["entering"] and not config.get("to_status"):
                raise ConfigError("entering", "needs to_status (the statuses the account enters)")
        return config, ""

    def matches(self, config, model_type, event):
        p = event.payload
        if event.type not in self.event_types or (p.get("created") and not config["include_new_accounts"]):
            return False
        wanted_from, wanted_to = any_of(config.get("from_status")), any_of(config.get("to_status"))
        if wanted_from and p.get("from_status") not in wanted_from:
            return False
        if config.get("entering") and p.get("from_status") in wanted_to:
            return False
        return not wanted_to or p.get("to_status") in wanted_to


@register
class StageChange(Trigger):
    """Seed 004's stage transition, e.g. ``{"to_stage": "At Risk"}`` (stage names, case-insensitive)."""

    type = "stage_change"
    event_types = ("stage_change",)
    settings = dict.fromkeys(("from_stage", "to_stage"), js.text(description="A journey stage name."))

    def matches(self, config, model_type, event):
        p = event.payload
        if event.type not in self.event_types:
            return False
        for key in ("from_stage", "to_stage"):
            if config.get(key) and str(p.get(key) or "").lower() != str(config[key]).lower():
                return False
        return True


@register
class EngagementEvent(Trigger):
    """Seed 001: an engagement recorded as missed, negative or without response. ``engagement_types``
    (meeting, call, email) narrows it. ``time_threshold`` (``3d``) is measured from the engagement's
    ``occurred_at`` to when the outcome was recorded (the event): for ``no_response`` the contact has been
    silent at least that long (an outcome recorded sooner does not match); for ``meeting_missed`` and
    ``negative_outcome`` the engagement is at most that old (a backfilled old engagement starts nothing)."""

    type = "engagement_event"
    event_types = ("engagement_event",)
    KINDS = ("meeting_missed", "negative_outcome", "no_response")
    settings = {"event_type": js.enum(KINDS), "engagement_types": js.many(js.enum(Engagement.Kind.values)),
                "time_threshold": js.duration(description="From the engagement to its recorded outcome.")}

    def validate_config(self, config, model_type=""):
        config = self.known(config)
        config["event_type"] = choice(config, "event_type", self.KINDS)
        config["engagement_types"] = string_list(config, "engagement_types")
        if any(kind not in Engagement.Kind.values for kind in config["engagement_types"]):
            raise ConfigError("engagement_types", f"must be a list of {', '.join(Engagement.Kind.values)}")
        if config.get("time_threshold"):
            parse_duration(config["time_threshold"], "time_threshold")
        return config, ""

    def matches(self, config, model_type, event):
        p = event.payload
        return (event.type in self.event_types and p.get("event_type") == config["event_type"]
                and (not config["engagement_types"] or p.get("engagement_type") in config["engagement_types"])
                and self._within_threshold(config, event))

    @staticmethod
    def _within_threshold(config: dict, event) -> bool:
        if not config.get("time_threshold"):
            return True
        threshold = parse_duration(config["time_threshold"], "time_threshold")
        occurred = Engagement.objects.for_tenant(event.tenant_id).filter(
            pk=event.payload.get("engagement_id")).values_list("occurred_at", flat=True).first()
        if occurred is None:
            return False  # deleted since: nothing to measure
        waited = event.created_at - occurred
        return waited >= threshold if config["event_type"] == "no_response" else waited <= threshold


@register
class GoalEvent(Trigger):
    type = "goal_event"
    event_types = ("goal_event",)
    EVENTS = ("created", "achieved", "missed", "at_risk")
    settings = {"event": js.enum(EVENTS), "goal_types": js.many(js.text()), "include_created": js.boolean()}

    def validate_config(self, config, model_type=""):
        config = self.known(config)
        config["event"] = choice(config, "event", self.EVENTS)
        config["goal_types"] = string_list(config, "goal_types")
        if "include_created" in config and not isinstance(config["include_created"], bool):
            raise ConfigError("include_created", "must be true or false")
        return config, ""

    def matches(self, config, model_type, event):
        """``include_created``: a goal created with the status already (e.g. achieved) counts too."""
        p = event.payload
        happened = p.get("event") == config["event"] or (
            config.get("include_created") and p.get("event") == "created" and p.get("to_status") == config["event"])
        return (event.type in self.event_types and happened
                and (not config["goal_types"] or p.get("goal_type") in config["goal_types"]))


@register
class DomainEvent(Trigger):
    """Any named domain event sent through ``emit()``: payment_failed, trial_ending, …"""

    type = "event"
    settings = {"event_type": js.text(pattern=r"^[a-z][a-z0-9_]{1,63}$", description="E.g. payment_failed.")}

    def validate_config(self, config, model_type=""):
        config = self.known(config)
        name = config.get("event_type")
        if not isinstance(name, str) or not re.fullmatch(r"[a-z][a-z0-9_]{1,63}", name):
            raise ConfigError("event_type", "must be a lower-case event name such as payment_failed")
        return config, ""

    def listens_to(self, config, model_type):
        return [(config["event_type"], "account")]

    def matches(self, config, model_type, event):
        return event.type == config["event_type"]


@register
class Manual(Trigger):
    """Runs only when started by hand (``POST /execute``, ``/{id}/execute``, the admin)."""

    type = "manual"


@register
class Scheduled(Trigger):
    """Seed 001's schedule; fired by the scheduler over every account in scope (not by events)."""

    type = "scheduled"
    SCHEDULES = ("daily", "weekly", "monthly")
    settings = {"schedule": js.enum(SCHEDULES), "time": js.text(fmt="time", description="HH:MM"),
                "timezone": js.text(description="IANA, e.g. Europe/Paris"), "days_of_week": js.many(js.integer())}

    def validate_config(self, config, model_type=""):
        config = self.known(config)
        config["schedule"] = choice(config, "schedule", self.SCHEDULES, "daily")
        if not re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d", str(config.get("time", "09:00"))):
            raise ConfigError("time", "must be HH:MM")
        config["time"] = config.get("time", "09:00")
        config["timezone"] = config.get("timezone") or "UTC"
        if config["timezone"] not in available_timezones():
            raise ConfigError("timezone", f"'{config['timezone']}' is not an IANA timezone")
        days = config.get("days_of_week") or []
        if not isinstance(days, list) or not all(isinstance(d, int) and 0 <= d <= 7 for d in days):
            raise ConfigError("days_of_week", "must be a list of day numbers")
        return config, ""


TIME_BASED_EVERY = {"hourly": "1h", "daily": "1d", "weekly": "1w"}  # seed 003's schedule names


@register
class TimeBased(Trigger):
    """Seed 003's time-based trigger: conditions such as ``updated_at less_than "7 days ago"`` checked
    on a schedule, compiled to one queryset."""

    type = "time_based"
    settings = {**ModelTrigger.settings, "schedule": js.enum(TIME_BASED_EVERY, description="Sets check_every."),
                "check_every": js.duration(description="How often the conditions are checked (default 1h).")}

    def validate_config(self, config, model_type=""):
        config = self.known(config)
        raw = model_type or config.pop("model_type", "") or config.pop("model", "") or "account"
        config.pop("model_type", None), config.pop("model", None)
        try:
            name = model_type_name(raw)
        except ValueError as exc:
            raise ConfigError("model_type", str(exc)) from None
        # Seed 003's schedule is how often the conditions are checked: it sets check_every, never contradicts it.
        schedule = config.get("schedule")
        if schedule is not None:
            every = choice(config, "schedule", tuple(TIME_BASED_EVERY))
            if config.get("check_every") not in (None, "", TIME_BASED_EVERY[every]):
                raise ConfigError("check_every", f"schedule {every} checks every {TIME_BASED_EVERY[every]}; "
                                                 "give one of the two")
            config["check_every"] = TIME_BASED_EVERY[every]
        config["check_every"] = config.get("check_every") or "1h"
        parse_duration(config["check_every"], "check_every")
        return config, name


@register
class Webhook(Trigger):
    """Started by an inbound webhook (``POST /api/hooks/<token>/``) with the JSON body as entity. Conditions
    read the body. ``model_type`` (optional: contact or account) names the record the body points at
    (``running.webhook_record``), which the actions then change (seed 003's marketing-qualified lead)."""

    type = "webhook"
    event_types = ("webhook",)
    subject_model = None
    RECORDS = ("account", "contact")

    def validate_config(self, config, model_type=""):
        config = self.known(config)
        if not model_type:
            return config, ""
        try:
            name = model_type_name(model_type)
        except ValueError as exc:
            raise ConfigError("model_type", str(exc)) from None
        if name not in self.RECORDS:
            raise ConfigError("model_type", f"a webhook body can point at an {' or a '.join(self.RECORDS)}, not a {name}")
        return config, name

"""The models rules can watch, by seed 003's lower-case ``model_type`` names."""

from __future__ import annotations

import re

from django.apps import apps
from django.db import models

WATCHED = {
    "account": "accounts.Account",
    "contact": "accounts.Contact",
    "task": "accounts.Task",
    "note": "accounts.Note",
    "goal": "accounts.Goal",
    "engagement": "accounts.Engagement",
    "supportticket": "accounts.SupportTicket",
    "surveyresponse": "accounts.SurveyResponse",
    "usagemetric": "accounts.UsageMetric",
    "healthscore": "accounts.HealthScore",
    "opportunity": "accounts.Opportunity",
}
ALIASES = {"ticket": "supportticket", "survey": "surveyresponse", "company": "account", "health_score": "healthscore",
           "deal": "opportunity"}


def model_type_name(value: str) -> str:
    """``account``, ``Account`` and ``accounts.Account`` all name the same model; raises ValueError."""
    # "account", "accounts.Account" and seed 003's "App\\Models\\Contact" all end in the model name.
    key = re.split(r"[.\\]", (value or "").strip())[-1].lower()
    key = ALIASES.get(key, key)
    if key not in WATCHED:
        raise ValueError(f"unknown model_type '{value}'; known: {', '.join(sorted(WATCHED))}")
    return key


def model_for(name: str) -> type[models.Model]:
    return apps.get_model(WATCHED[model_type_name(name)])


def name_of(model: type[models.Model]) -> str | None:
    label = model._meta.label
    for name, watched in WATCHED.items():
        if watched == label:
            return name
    return None


def account_of(obj) -> "models.Model | None":
    """The customer account a subject belongs to (the account itself for accounts)."""
    if obj is None:
        return None
    if obj._meta.label == "accounts.Account":
        return obj
    return getattr(obj, "account", None)

"""The evaluators of the five playbook types, by type (a registry: one class per type).

``EVALUATORS[type].evaluate(tenant, config)`` returns seed 000's result shape; ``validate(changes,
base)`` the complete, validated config. Seed 000's function names are kept as thin aliases.
"""

from __future__ import annotations

from .activation import ActivationEvaluator
from .base import Evaluator, Setting, SettingsError
from .expansion import ExpansionEvaluator
from .renewal import RenewalEvaluator
from .sla import SlaEvaluator
from .voc import VocEvaluator

EVALUATORS: dict[str, Evaluator] = {
    e.type: e for e in (VocEvaluator(), ActivationEvaluator(), SlaEvaluator(), RenewalEvaluator(),
                        ExpansionEvaluator())
}


def get_evaluator(playbook_type: str) -> Evaluator:
    try:
        return EVALUATORS[playbook_type]
    except (KeyError, TypeError):
        raise SettingsError({"playbook_type": [
            f"unknown playbook type {playbook_type!r}; known types: {', '.join(EVALUATORS)}"]}) from None


def evaluate_voc_triggers(tenant, triggers: dict | None = None) -> dict:
    """Seed 000's name: the VoC evaluation of ``triggers`` over the defaults."""
    evaluator = EVALUATORS["voc"]
    return evaluator.evaluate(tenant, evaluator.validate(triggers or {}))


def evaluate_activation_triggers(tenant, triggers: dict | None = None) -> dict:
    evaluator = EVALUATORS["activation"]
    return evaluator.evaluate(tenant, evaluator.validate(triggers or {}))


__all__ = ["EVALUATORS", "Evaluator", "Setting", "SettingsError", "get_evaluator", "evaluate_voc_triggers",
           "evaluate_activation_triggers"]

"""Every tenant has the five trigger settings, disabled, with documented defaults (seed 000's for voc
and activation); the config is validated per type."""

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from playbooks import services
from playbooks.evaluators import EVALUATORS, SettingsError
from playbooks.models import PlaybookTrigger

pytestmark = pytest.mark.django_db


def test_it_creates_the_five_defaults_disabled_once(tenant):
    first = services.playbook_triggers_ensure(tenant)
    again = services.playbook_triggers_ensure(tenant)

    assert list(first) == ["voc", "activation", "sla", "renewal", "expansion"]
    assert {t.pk for t in first.values()} == {t.pk for t in again.values()}
    assert not any(t.auto_trigger_enabled for t in first.values())
    assert first["voc"].trigger_config == EVALUATORS["voc"].defaults()


def test_it_uses_seed_000s_values_for_voc_and_activation():
    voc, activation = EVALUATORS["voc"].defaults(), EVALUATORS["activation"].defaults()

    assert {k: voc[k] for k in ("nps_threshold", "csat_threshold", "churn_risk_threshold",
                                "health_score_drop_threshold", "churn_mentions_threshold")} == {
        "nps_threshold": 10, "csat_threshold": 3.6, "churn_risk_threshold": 0.30,
        "health_score_drop_threshold": 10, "churn_mentions_threshold": 2}
    assert {k: activation[k] for k in ("adoption_index_threshold", "active_users_threshold", "dau_mau_threshold",
                                       "unused_feature_check")} == {
        "adoption_index_threshold": 60, "active_users_threshold": 50, "dau_mau_threshold": 0.25,
        "unused_feature_check": True}


@pytest.mark.parametrize("playbook_type", list(EVALUATORS))
def test_it_validates_its_own_defaults(playbook_type):
    evaluator = EVALUATORS[playbook_type]
    assert evaluator.validate({}) == evaluator.defaults()


def test_it_keeps_one_trigger_per_tenant_and_type(tenant):
    services.playbook_triggers_ensure(tenant)

    with pytest.raises(IntegrityError), transaction.atomic():
        PlaybookTrigger.objects.create(tenant=tenant, playbook_type="voc")


def test_it_validates_the_config_in_model_clean(tenant):
    trigger = services.playbook_triggers_ensure(tenant)["sla"]
    trigger.trigger_config = {"first_response_hours": -1, "bogus": 1}

    with pytest.raises(ValidationError) as error:
        trigger.full_clean()
    assert "first_response_hours" in str(error.value) and "bogus" in str(error.value)


def test_it_falls_back_to_the_default_for_a_stored_value_that_no_longer_validates():
    assert EVALUATORS["voc"].validate({}, {"nps_threshold": "garbage", "gone": 1})["nps_threshold"] == 10


def test_it_rejects_an_unknown_type():
    with pytest.raises(SettingsError) as error:
        services.playbook_trigger_validate_config("churn", {})
    assert "playbook_type" in error.value.errors

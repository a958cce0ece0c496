"""Each threshold on its own: an account just past it is affected with its reason, one short of it is
not, and null switches the check off. Every other check of the type is switched off in each test."""

import datetime

import pytest
from django.utils import timezone

from accounts.models import Note, SupportTicket
from playbooks import services
from playbooks.evaluators import EVALUATORS
from tests.factories import (
    AccountFactory, NoteFactory, SupportTicketFactory, SurveyResponseFactory, UsageMetricFactory,
)

from .conftest import record_score

pytestmark = pytest.mark.django_db

NOW = timezone.now


def only(playbook_type, **settings):
    """The type's defaults with every check off except those in ``settings``."""
    config = {}
    for setting in EVALUATORS[playbook_type].settings:
        if setting.nullable:
            config[setting.key] = None
        if setting.kind == "boolean" and setting.key.endswith("_check"):
            config[setting.key] = False
    if playbook_type == "renewal":
        config["require_risk_signal"] = False
    if playbook_type == "expansion":
        config["health_score_min"] = None
    config.update(settings)
    return config


def evaluate(tenant, playbook_type, **settings):
    result = services.playbook_trigger_test(tenant=tenant, playbook_type=playbook_type,
                                            changes=only(playbook_type, **settings))
    return {a["account_name"]: a["triggers"] for a in result["affected_accounts"]}


def days_ago(days, hours=0):
    return NOW() - datetime.timedelta(days=days, hours=hours)


def usage(account, days=30, **values):
    today = timezone.localdate()
    for day in range(days):
        UsageMetricFactory(account=account, date=today - datetime.timedelta(days=day),
                           **{k: (v(day) if callable(v) else v) for k, v in values.items()})


# --- VoC -----------------------------------------------------------------------------------------

def test_it_fires_voc_when_nps_is_below_the_threshold(tenant):
    low = AccountFactory(tenant=tenant, name="Low")
    high = AccountFactory(tenant=tenant, name="High")
    AccountFactory(tenant=tenant, name="Silent")
    for score in (0, 9):  # one detractor, one promoter: NPS 0
        SurveyResponseFactory(account=low, score=score, responded_at=days_ago(5))
    for score in (9, 9, 7):  # NPS 66.7
        SurveyResponseFactory(account=high, score=score, responded_at=days_ago(5))
    SurveyResponseFactory(account=high, score=0, responded_at=days_ago(120))  # outside the 90-day window

    assert evaluate(tenant, "voc", nps_threshold=10) == {
        "Low": ["NPS 0 is below 10 (2 responses in the last 90 days: 1 promoter, 1 detractor)"],
    }
    assert evaluate(tenant, "voc", nps_threshold=0) == {}  # 0 is not below 0
    assert set(evaluate(tenant, "voc", nps_threshold=70)) == {"Low", "High"}
    assert evaluate(tenant, "voc", nps_threshold=None) == {}


def test_it_fires_voc_when_average_csat_is_below_the_threshold(tenant):
    unhappy = AccountFactory(tenant=tenant, name="Unhappy")
    fine = AccountFactory(tenant=tenant, name="Fine")
    for score in (3, 4):
        SurveyResponseFactory(account=unhappy, kind="csat", score=score, responded_at=days_ago(3))
    SurveyResponseFactory(account=fine, kind="csat", score=4, responded_at=days_ago(3))
    SurveyResponseFactory(account=fine, kind="csat", score=1, responded_at=days_ago(95))  # too old

    assert evaluate(tenant, "voc", csat_threshold=3.6) == {
        "Unhappy": ["CSAT 3.5 is below 3.6 (average of 2 responses in the last 90 days)"],
    }
    assert evaluate(tenant, "voc", csat_threshold=3.5) == {}
    assert set(evaluate(tenant, "voc", csat_threshold=4.5)) == {"Unhappy", "Fine"}
    assert set(evaluate(tenant, "voc", csat_threshold=4.5, window_days=100)) == {"Unhappy", "Fine"}


def test_it_fires_voc_on_churn_risk_from_risk_level_and_negative_trend(tenant):
    at_risk = AccountFactory(tenant=tenant, name="At risk")          # 50: At Risk, base 0.40
    record_score(at_risk, 50)
    slipping = AccountFactory(tenant=tenant, name="Slipping")        # 65 (Moderate, 0.20) after 80: +0.15
    record_score(slipping, 80, days_ago=40)
    record_score(slipping, 65)
    steady = AccountFactory(tenant=tenant, name="Steady")            # 65, no drop: 0.20
    record_score(steady, 65)
    AccountFactory(tenant=tenant, name="Unscored")

    assert evaluate(tenant, "voc", churn_risk_threshold=0.3) == {
        "At risk": ["Churn risk 0.40 is at or above 0.30 (risk level At Risk, no drop in 30 days)"],
        "Slipping": ["Churn risk 0.35 is at or above 0.30 (risk level Moderate, health score down 15 points in "
                     "30 days)"],
    }
    assert set(evaluate(tenant, "voc", churn_risk_threshold=0.36)) == {"At risk"}
    assert set(evaluate(tenant, "voc", churn_risk_threshold=0.2)) == {"At risk", "Slipping", "Steady"}


def test_it_fires_voc_when_the_health_score_dropped_over_the_window(tenant):
    dropped = AccountFactory(tenant=tenant, name="Dropped")
    record_score(dropped, 80, days_ago=40)
    record_score(dropped, 70, days_ago=10)
    record_score(dropped, 65)
    small = AccountFactory(tenant=tenant, name="Small")
    record_score(small, 80, days_ago=40)
    record_score(small, 75)
    old_news = AccountFactory(tenant=tenant, name="Old news")  # the drop happened before the window
    record_score(old_news, 90, days_ago=60)
    record_score(old_news, 70, days_ago=40)
    record_score(old_news, 70)
    recent = AccountFactory(tenant=tenant, name="Recent")  # first score inside the window is the baseline
    record_score(recent, 90, days_ago=20)
    record_score(recent, 75)

    assert evaluate(tenant, "voc", health_score_drop_threshold=10) == {
        "Dropped": ["Health score dropped 15 points in the last 30 days (from 80 to 65; threshold 10)"],
        "Recent": ["Health score dropped 15 points in the last 30 days (from 90 to 75; threshold 10)"],
    }
    assert evaluate(tenant, "voc", health_score_drop_threshold=15.5) == {}
    assert set(evaluate(tenant, "voc", health_score_drop_threshold=5)) == {"Dropped", "Recent", "Small"}
    assert set(evaluate(tenant, "voc", health_score_drop_threshold=10, health_drop_window_days=90)) == {
        "Dropped", "Recent", "Old news"}


def test_it_counts_churn_mentions_in_notes_survey_comments_and_tickets(tenant):
    loud = AccountFactory(tenant=tenant, name="Loud")
    NoteFactory(account=loud, body="They are talking about Cancellation.")  # "cancel" starts the word
    SupportTicketFactory(account=loud, subject="Export broken", description="We will switch to a competitor",
                         opened_at=days_ago(2))  # two words, one text
    SurveyResponseFactory(account=loud, score=8, comment="fine", responded_at=days_ago(2))
    quiet = AccountFactory(tenant=tenant, name="Quiet")
    NoteFactory(account=quiet, body="Churn was mentioned once.")
    NoteFactory(account=quiet, body="Uncancelled order, no worries.")  # "cancel" does not start a word here
    old = NoteFactory(account=quiet, body="They want to cancel.")
    Note.objects.filter(pk=old.pk).update(created_at=days_ago(100))  # outside the window

    assert evaluate(tenant, "voc", churn_mentions_threshold=2) == {
        "Loud": ["2 churn mentions in the last 90 days (1 note, 0 survey comments, 1 support ticket; threshold 2)"],
    }
    assert set(evaluate(tenant, "voc", churn_mentions_threshold=1)) == {"Loud", "Quiet"}
    assert set(evaluate(tenant, "voc", churn_mentions_threshold=2, window_days=120)) == {"Loud", "Quiet"}
    assert evaluate(tenant, "voc", churn_mentions_threshold=1, churn_keywords=["budget"]) == {}


def test_it_says_which_signals_have_no_data_for_an_affected_account(tenant):
    account = AccountFactory(tenant=tenant, name="Half known")
    SurveyResponseFactory(account=account, score=2, responded_at=days_ago(3))

    assert evaluate(tenant, "voc", nps_threshold=10, csat_threshold=3.6, churn_risk_threshold=0.3) == {
        "Half known": ["NPS -100 is below 10 (1 response in the last 90 days: 0 promoters, 1 detractor)",
                       "No CSAT responses in the last 90 days", "No health score recorded"],
    }


def test_it_uses_the_tenants_own_churn_words(tenant):
    account = AccountFactory(tenant=tenant, name="Budget")
    NoteFactory(account=account, body="Budget cuts next quarter")

    assert set(evaluate(tenant, "voc", churn_mentions_threshold=1, churn_keywords="budget, layoffs")) == {"Budget"}


# --- Activation ----------------------------------------------------------------------------------

def test_it_fires_activation_on_a_low_adoption_index(tenant):
    narrow = AccountFactory(tenant=tenant, name="Narrow", licensed_seats=None)
    usage(narrow, features_used=["a"])                      # 1 of 4 features: 25
    broad = AccountFactory(tenant=tenant, name="Broad", licensed_seats=None)
    usage(broad, features_used=["a", "b", "c", "d"])        # 100
    seated = AccountFactory(tenant=tenant, name="Seated", licensed_seats=20)
    usage(seated, features_used=["a"], active_users=20)     # (25 + 100) / 2 = 62.5

    assert evaluate(tenant, "activation", adoption_index_threshold=60) == {
        "Narrow": ["Adoption index 25 is below 60 (1 of 4 features used, no licensed seats recorded in the last "
                   "30 days)"],
    }
    assert set(evaluate(tenant, "activation", adoption_index_threshold=63)) == {"Narrow", "Seated"}
    assert evaluate(tenant, "activation", adoption_index_threshold=25) == {}


def test_it_fires_activation_on_few_active_users(tenant):
    few = AccountFactory(tenant=tenant, name="Few")
    usage(few, active_users=lambda day: 10 if day < 15 else 30)  # average 20
    many = AccountFactory(tenant=tenant, name="Many")
    usage(many, active_users=60)
    AccountFactory(tenant=tenant, name="No telemetry")

    assert evaluate(tenant, "activation", active_users_threshold=50) == {
        "Few": ["20 active users a day on average in the last 30 days, below 50"],
    }
    assert evaluate(tenant, "activation", active_users_threshold=20) == {}


def test_it_fires_activation_on_a_low_dau_mau_ratio(tenant):
    sporadic = AccountFactory(tenant=tenant, name="Sporadic")
    usage(sporadic, dau=2, mau=20)
    sticky = AccountFactory(tenant=tenant, name="Sticky")
    usage(sticky, dau=10, mau=20)
    unknown = AccountFactory(tenant=tenant, name="No MAU")
    usage(unknown, dau=3, mau=0, active_users=1)

    assert evaluate(tenant, "activation", dau_mau_threshold=0.25) == {
        "Sporadic": ["DAU/MAU 0.10 is below 0.25 (over the last 30 days)"],
    }
    assert set(evaluate(tenant, "activation", dau_mau_threshold=0.6)) == {"Sporadic", "Sticky"}
    # An account with no MAU is not guessed at: another check brings it up, and its reasons say so.
    assert evaluate(tenant, "activation", dau_mau_threshold=0.25, active_users_threshold=5)["No MAU"] == [
        "1 active users a day on average in the last 30 days, below 5",
        "No MAU reported in the last 30 days (DAU/MAU unknown)",
    ]


def test_it_fires_activation_on_unused_target_features(tenant):
    partial = AccountFactory(tenant=tenant, name="Partial")
    usage(partial, features_used=lambda day: ["reports"] if day % 2 else ["reports", "sso"])
    complete = AccountFactory(tenant=tenant, name="Complete")
    usage(complete, features_used=lambda day: ["reports", "api"] if day == 3 else ["reports"])
    old = AccountFactory(tenant=tenant, name="Used api long ago")
    usage(old, days=1, features_used=["reports"])
    UsageMetricFactory(account=old, date=timezone.localdate() - datetime.timedelta(days=40), features_used=["api"])

    assert evaluate(tenant, "activation", unused_feature_check=True, target_features="reports, api") == {
        "Partial": ["1 of 2 features unused in the last 30 days: api"],
        "Used api long ago": ["1 of 2 features unused in the last 30 days: api"],
    }
    assert evaluate(tenant, "activation", unused_feature_check=True, target_features=["reports", "api"],
                    unused_features_threshold=2) == {}
    assert evaluate(tenant, "activation", unused_feature_check=False, target_features=["reports", "api"]) == {}


def test_it_takes_the_known_features_from_the_tenants_usage_without_targets(tenant, other_tenant):
    one = AccountFactory(tenant=tenant, name="One")
    usage(one, features_used=["reports"])
    two = AccountFactory(tenant=tenant, name="Two")
    usage(two, features_used=["reports", "api"])
    stranger = AccountFactory(tenant=other_tenant, name="Other tenant's")
    usage(stranger, features_used=["secret-feature"])  # not part of this tenant's catalog

    assert evaluate(tenant, "activation", unused_feature_check=True) == {
        "One": ["1 of 2 features unused in the last 30 days: api"],
    }


# --- SLA -----------------------------------------------------------------------------------------

def test_it_fires_sla_on_first_response_and_resolution_breaches(tenant):
    waiting = AccountFactory(tenant=tenant, name="Waiting")
    SupportTicketFactory(account=waiting, opened_at=days_ago(0, hours=10))  # unanswered for 10h
    slow = AccountFactory(tenant=tenant, name="Slow fix")
    SupportTicketFactory(account=slow, opened_at=days_ago(10), first_response_at=days_ago(10) + datetime.timedelta(
        hours=1), resolved_at=days_ago(5), status=SupportTicket.Status.RESOLVED)
    fine = AccountFactory(tenant=tenant, name="Fine")
    SupportTicketFactory(account=fine, opened_at=days_ago(2), first_response_at=days_ago(2) + datetime.timedelta(
        hours=1), resolved_at=days_ago(1), status=SupportTicket.Status.RESOLVED)
    old = AccountFactory(tenant=tenant, name="Old")
    SupportTicketFactory(account=old, opened_at=days_ago(60), status=SupportTicket.Status.CLOSED)

    assert evaluate(tenant, "sla", sla_breach_threshold=1, first_response_hours=4, resolution_hours=72) == {
        "Slow fix": ["1 ticket opened in the last 30 days breached the SLA (0 past the 4h first-response target, "
                     "1 past the 72h resolution target; threshold 1)"],
        "Waiting": ["1 ticket opened in the last 30 days breached the SLA (1 past the 4h first-response target, "
                    "0 past the 72h resolution target; threshold 1)"],
    }
    assert set(evaluate(tenant, "sla", sla_breach_threshold=1, first_response_hours=12,
                        resolution_hours=72)) == {"Slow fix"}
    assert set(evaluate(tenant, "sla", sla_breach_threshold=1, first_response_hours=4,
                        resolution_hours=None)) == {"Waiting"}
    assert evaluate(tenant, "sla", sla_breach_threshold=2, first_response_hours=4, resolution_hours=72) == {}


def test_it_fires_sla_on_open_urgent_tickets(tenant):
    urgent = AccountFactory(tenant=tenant, name="Urgent")
    SupportTicketFactory(account=urgent, priority="urgent", status="pending", opened_at=days_ago(90))
    solved = AccountFactory(tenant=tenant, name="Solved")
    answered = dict(opened_at=days_ago(1), first_response_at=days_ago(1) + datetime.timedelta(minutes=10))
    SupportTicketFactory(account=solved, priority="urgent", status="closed", **answered)
    normal = AccountFactory(tenant=tenant, name="Normal")
    SupportTicketFactory(account=normal, priority="high", status="open", **answered)

    assert evaluate(tenant, "sla", open_urgent_threshold=1) == {
        "Urgent": ["1 urgent ticket open or pending (threshold 1)"],
    }
    # With the breach check on too, the reasons say there is no recent ticket to judge it by.
    assert evaluate(tenant, "sla", open_urgent_threshold=1, sla_breach_threshold=1, first_response_hours=4) == {
        "Urgent": ["1 urgent ticket open or pending (threshold 1)", "No support tickets opened in the last 30 days"],
    }
    assert evaluate(tenant, "sla", open_urgent_threshold=2) == {}


# --- Renewal -------------------------------------------------------------------------------------

def renewing(tenant, name, days, score=None):
    account = AccountFactory(tenant=tenant, name=name, renewal_date=timezone.localdate() + datetime.timedelta(days))
    if score is not None:
        record_score(account, score)
    return account


def test_it_fires_renewal_for_unhealthy_accounts_renewing_soon(tenant):
    renewing(tenant, "Weak soon", 30, score=50)
    renewing(tenant, "Strong soon", 30, score=90)
    renewing(tenant, "Weak later", 200, score=50)
    renewing(tenant, "Weak lapsed", -5, score=50)
    AccountFactory(tenant=tenant, name="No date", renewal_date=None)
    renewing(tenant, "Unscored soon", 10)

    assert evaluate(tenant, "renewal", require_risk_signal=True, health_score_threshold=70) == {
        "Weak soon": [f"Renews in 30 days ({(timezone.localdate() + datetime.timedelta(30)).isoformat()})",
                      "Health score 50 is below 70"],
    }
    assert set(evaluate(tenant, "renewal", require_risk_signal=True, health_score_threshold=70,
                        days_to_renewal=365)) == {"Weak soon", "Weak later"}
    assert set(evaluate(tenant, "renewal", require_risk_signal=True, health_score_threshold=95)) == {
        "Weak soon", "Strong soon"}


def test_it_fires_renewal_when_usage_declines(tenant):
    fading = renewing(tenant, "Fading", 20, score=90)
    usage(fading, active_users=lambda day: 10 if day < 15 else 20)  # 20 -> 10: -50%
    flat = renewing(tenant, "Flat", 20, score=90)
    usage(flat, active_users=20)
    unknown = renewing(tenant, "Only recent usage", 20, score=40)
    usage(unknown, days=10, active_users=5)

    result = evaluate(tenant, "renewal", require_risk_signal=True, usage_decline_threshold=20)
    assert result == {"Fading": [
        f"Renews in 20 days ({(timezone.localdate() + datetime.timedelta(20)).isoformat()})",
        "Active users down 50% (10 a day in the last 15 days against 20 in the 15 days before; threshold 20%)",
    ]}
    assert evaluate(tenant, "renewal", require_risk_signal=True, usage_decline_threshold=50.1) == {}
    both = evaluate(tenant, "renewal", require_risk_signal=True, usage_decline_threshold=20, health_score_threshold=70)
    assert both["Only recent usage"][1:] == [
        "Health score 40 is below 70", "No usage in the 15 days before the last 15 (usage trend unknown)"]


def test_it_lists_every_renewal_without_requiring_a_risk_signal(tenant):
    renewing(tenant, "Strong soon", 30, score=90)
    renewing(tenant, "Strong later", 120, score=90)

    assert list(evaluate(tenant, "renewal", require_risk_signal=False)) == ["Strong soon"]


# --- Expansion -----------------------------------------------------------------------------------

def expanding(tenant, name, score=85, seats=10, active=9, nps=()):
    account = AccountFactory(tenant=tenant, name=name, licensed_seats=seats)
    record_score(account, score)
    if active is not None:
        usage(account, active_users=active)
    for value in nps:
        SurveyResponseFactory(account=account, score=value, responded_at=days_ago(3))
    return account


def test_it_fires_expansion_on_seat_utilisation(tenant):
    expanding(tenant, "Full", active=9)
    expanding(tenant, "Half", active=5)
    expanding(tenant, "Unlicensed", seats=None)
    expanding(tenant, "Full but unhealthy", score=70, active=10)

    assert evaluate(tenant, "expansion", seat_utilization_threshold=0.8, health_score_min=75) == {
        "Full": ["Health score 85 is at or above 75",
                 "Seat utilisation 90% is at or above 80% (9 active users a day on 10 licensed seats in the last 30 "
                 "days)"],
    }
    assert set(evaluate(tenant, "expansion", seat_utilization_threshold=0.8)) == {"Full", "Full but unhealthy"}
    assert evaluate(tenant, "expansion", seat_utilization_threshold=0.95, health_score_min=75) == {}
    assert list(evaluate(tenant, "expansion", seat_utilization_threshold=0.95)) == ["Full but unhealthy"]


def test_it_fires_expansion_on_usage_growth(tenant):
    growing = expanding(tenant, "Growing", active=None)
    usage(growing, active_users=lambda day: 6 if day < 15 else 5)  # +20%
    expanding(tenant, "Flat", active=5)

    assert evaluate(tenant, "expansion", usage_growth_threshold=10) == {
        "Growing": ["Active users up 20% (6 a day in the last 15 days against 5 in the 15 days before; threshold "
                    "10%)"],
    }
    assert evaluate(tenant, "expansion", usage_growth_threshold=25) == {}


def test_it_fires_expansion_on_a_high_nps(tenant):
    expanding(tenant, "Fans", nps=(10, 9))
    expanding(tenant, "Mixed", nps=(10, 3))
    expanding(tenant, "Silent")

    assert evaluate(tenant, "expansion", nps_threshold=50) == {
        "Fans": ["NPS 100 is at or above 50 (2 responses in the last 90 days)"],
    }
    assert set(evaluate(tenant, "expansion", nps_threshold=0)) == {"Fans", "Mixed"}


def test_it_requires_min_signals_for_expansion(tenant):
    expanding(tenant, "Seats only", active=9)
    expanding(tenant, "Seats and fans", active=9, nps=(10,))

    config = dict(seat_utilization_threshold=0.8, nps_threshold=50)
    assert set(evaluate(tenant, "expansion", **config, min_signals=1)) == {"Seats only", "Seats and fans"}
    result = evaluate(tenant, "expansion", **config, min_signals=2)
    assert list(result) == ["Seats and fans"]
    assert result["Seats and fans"][-1] == "NPS 100 is at or above 50 (1 response in the last 90 days)"


def test_it_never_evaluates_churned_accounts(tenant):
    gone = AccountFactory(tenant=tenant, name="Gone", status="churned")
    SurveyResponseFactory(account=gone, score=0, responded_at=days_ago(1))

    assert evaluate(tenant, "voc", nps_threshold=10) == {}

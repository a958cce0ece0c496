"""Retry schedules: the default one, a rule's seed 003 retry_configuration, retry_count, jitter, Retry-After."""

from datetime import datetime, timezone

from delivery import retry
from automation.models import Workflow


def test_it_uses_the_well_known_default_schedule():
    policy, attempts = retry.policy_for()
    assert attempts == 8
    assert [d.total_seconds() for d in retry.describe(policy, attempts)] == [5, 300, 1800, 7200, 18000, 36000, 36000]
    assert sum(retry.DEFAULT_SCHEDULE) / 3600 > 27  # about a day in all


def test_it_uses_a_rules_exponential_retry_configuration():
    rule = Workflow(allow_retries=True, retry_configuration={"max_retries": 4, "delay_minutes": 15,
                                                             "backoff_multiplier": 2, "max_delay_hours": 1})
    policy, attempts = retry.policy_for(rule)
    assert attempts == 5
    assert [d.total_seconds() / 60 for d in retry.describe(policy, attempts)] == [15, 30, 60, 60]


def test_it_ignores_a_retry_configuration_when_retries_are_off():
    rule = Workflow(allow_retries=False, retry_configuration={"max_retries": 1})
    assert retry.policy_for(rule)[1] == 8


def test_it_caps_retries_with_an_actions_retry_count():
    assert retry.policy_for(config={"retry_count": 2})[1] == 3
    assert retry.policy_for(config={"retry_count": 0})[1] == 1


def test_it_adds_up_to_twenty_percent_jitter():
    policy, _ = retry.policy_for()
    assert retry.next_delay(policy, 2, rand=lambda: 0.0) == 240
    assert retry.next_delay(policy, 2, rand=lambda: 1.0) == 360
    assert retry.next_delay(policy, 2, rand=lambda: 0.5) == 300


def test_it_waits_at_least_as_long_as_retry_after_asks():
    policy, _ = retry.policy_for()
    assert retry.next_delay(policy, 1, retry_after=120, rand=lambda: 0.5) == 120
    assert retry.next_delay(policy, 3, retry_after=1, rand=lambda: 0.5) == 1800
    assert retry.next_delay(policy, 1, retry_after=10 ** 9, rand=lambda: 0.5) == retry.MAX_RETRY_AFTER


def test_it_reads_retry_after_as_seconds_or_an_http_date():
    now = datetime(2025, 1, 1, 12, 0, tzinfo=timezone.utc)
    assert retry.parse_retry_after("30", now) == 30
    assert retry.parse_retry_after("Wed, 01 Jan 2025 12:02:00 GMT", now) == 120
    assert retry.parse_retry_after("soon", now) is None and retry.parse_retry_after(None, now) is None
    assert retry.parse_retry_after("Wed, 01 Jan 2025 11:00:00 GMT", now) == 0

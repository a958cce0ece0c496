"""Quiet hours: windows inside a day and across midnight, contacts in other timezones, tenant defaults;
customer messages wait for the end of the window, owner notifications do not."""

import datetime
from zoneinfo import ZoneInfo

import pytest

from crm.models import CRMStep
from crm.quiet_hours import quiet_until, window_for
from crm.scheduler import execute_pending_steps
from crm.services import crm_settings_for, start_journey

from .conftest import UTC, hours, outbox, reload, steps_of

T = datetime.time
BERLIN, TOKYO, NEW_YORK = ZoneInfo("Europe/Berlin"), ZoneInfo("Asia/Tokyo"), ZoneInfo("America/New_York")


def at(zone, *args):
    return datetime.datetime(*args, tzinfo=zone)


@pytest.mark.parametrize("local, expected_end", [
    (at(BERLIN, 2026, 6, 1, 23, 30), at(BERLIN, 2026, 6, 2, 8, 0)),  # before midnight: ends tomorrow
    (at(BERLIN, 2026, 6, 2, 0, 0), at(BERLIN, 2026, 6, 2, 8, 0)),  # midnight itself
    (at(BERLIN, 2026, 6, 2, 3, 15), at(BERLIN, 2026, 6, 2, 8, 0)),  # after midnight: ends today
    (at(BERLIN, 2026, 6, 1, 22, 0), at(BERLIN, 2026, 6, 2, 8, 0)),  # the start is inside
    (at(BERLIN, 2026, 6, 2, 8, 0), None),  # the end is outside
    (at(BERLIN, 2026, 6, 1, 12, 0), None),
    (at(BERLIN, 2026, 6, 1, 21, 59), None),
])
def test_it_finds_the_end_of_a_window_that_crosses_midnight(local, expected_end):
    until = quiet_until(local.astimezone(UTC), T(22), T(8), BERLIN)
    assert until == (expected_end.astimezone(UTC) if expected_end else None)


def test_it_handles_a_window_inside_one_day_and_an_empty_one():
    noon = at(TOKYO, 2026, 6, 1, 12, 30)
    assert quiet_until(noon, T(12), T(14), TOKYO) == at(TOKYO, 2026, 6, 1, 14, 0)
    assert quiet_until(noon, T(14), T(16), TOKYO) is None
    assert quiet_until(noon, T(12), T(12), TOKYO) is None  # start == end: no window


def test_it_reads_the_window_in_the_contacts_own_timezone():
    # 13:00 UTC is 22:00 in Tokyo (quiet) and 09:00 in New York (not quiet) for the same 21:00-07:00.
    now = datetime.datetime(2026, 6, 1, 13, 0, tzinfo=UTC)
    assert quiet_until(now, T(21), T(7), TOKYO) == at(TOKYO, 2026, 6, 2, 7, 0)
    assert quiet_until(now, T(21), T(7), NEW_YORK) is None


def test_it_keeps_the_wall_clock_end_across_a_daylight_saving_change():
    # Berlin springs forward in the night of 28/29 March 2026: 08:00 is then UTC+2.
    now = at(BERLIN, 2026, 3, 28, 23, 0).astimezone(UTC)
    assert quiet_until(now, T(22), T(8), BERLIN) == datetime.datetime(2026, 3, 29, 6, 0, tzinfo=UTC)


@pytest.mark.django_db
def test_it_falls_back_to_the_tenant_default_window_and_timezone(tenant, contact):
    contact.timezone = ""
    tenant.timezone = "Asia/Tokyo"
    tenant.save()
    assert window_for(contact, crm_settings_for(tenant)) is None
    settings = crm_settings_for(tenant)
    settings.quiet_hours_start, settings.quiet_hours_end = T(21), T(7)
    settings.save()
    window = window_for(contact, settings)
    assert (window.start, window.end, str(window.tz)) == (T(21), T(7), "Asia/Tokyo")
    contact.quiet_hours_start, contact.quiet_hours_end = T(12), T(13)  # the contact's own hours win
    assert window_for(contact, settings).start == T(12)


@pytest.mark.django_db
def test_it_defers_a_customer_step_across_midnight_in_the_contacts_timezone(tenant, account, contact):
    contact.timezone, contact.quiet_hours_start, contact.quiet_hours_end = "Asia/Tokyo", T(22), T(8)
    contact.save()
    now = at(TOKYO, 2026, 6, 1, 23, 45).astimezone(UTC)  # 14:45 UTC, quiet in Tokyo
    execution = start_journey(contact, "churn_risk", now=now)
    assert execute_pending_steps(now=now)["deferred"] == 1
    morning = at(TOKYO, 2026, 6, 2, 8, 0).astimezone(UTC)
    [step] = steps_of(execution)
    assert (step.status, step.scheduled_for) == ("deferred", morning)
    assert not outbox(tenant)
    assert execute_pending_steps(now=morning)["sent"] == 1
    assert reload(execution).next_step_at == morning + hours(48)
    assert steps_of(execution)[0].status == "sent"


@pytest.mark.django_db
def test_it_sends_owner_notifications_inside_the_contacts_quiet_hours(tenant, account, contact, owner):
    contact.quiet_hours_start, contact.quiet_hours_end = T(0), T(23, 59)  # quiet almost all day
    contact.save()
    now = datetime.datetime(2026, 6, 1, 18, 0, tzinfo=UTC)
    execution = start_journey(contact, "churn_risk", now=now)
    execution.current_step, execution.next_step_at = 1, now  # go straight to the owner step
    execution.save()
    assert execute_pending_steps(now=now)["sent"] == 1
    assert outbox(tenant)[0].target == owner.email
    assert reload(execution).status == "completed"


@pytest.mark.django_db
def test_it_skips_instead_of_deferring_when_the_step_says_so(tenant, account, contact):
    CRMStep.objects.filter(playbook__name="churn_risk", order=0).update(quiet_hours="skip")
    contact.quiet_hours_start, contact.quiet_hours_end = T(0), T(23, 59)
    contact.save()
    now = datetime.datetime(2026, 6, 1, 18, 0, tzinfo=UTC)
    execution = start_journey(contact, "churn_risk", now=now)
    assert execute_pending_steps(now=now)["skipped_quiet_hours"] == 1
    assert steps_of(execution)[0].status == "skipped_quiet_hours"
    assert reload(execution).current_step == 1

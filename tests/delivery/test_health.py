"""Webhook endpoint health: an endpoint that failed everything for 5 days is disabled, the tenant admins
get a task (once per disabling), further messages go straight to dead; re-enabling is a service call.
The clock is frozen by passing ``now=`` to the delivery pass."""

from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import Role, Task
from delivery import health, services
from delivery.models import Outbox
from delivery.models import WebhookEndpoint
from tests.factories import MembershipFactory

pytestmark = pytest.mark.django_db
S = Outbox.Status
DAY = timedelta(days=1)
#: Enough attempts, one second apart, to fail once a day for a week (the frozen clock makes each due).
POLICY = ({"schedule": [1]}, 30)


@pytest.fixture
def admins(tenant):
    MembershipFactory(tenant=tenant, role=Role.PRACTITIONER)  # not told
    return [MembershipFactory(tenant=tenant, role=Role.TENANT_ADMIN).user for _ in range(2)]


def enqueue(tenant, url, **kwargs):
    return services.outbox_enqueue(tenant=tenant, channel="webhook", target=url, payload={"n": 1},
                                   retry_policy=POLICY, **kwargs)


def reload(obj):
    obj.refresh_from_db()
    return obj


def tasks(tenant):
    return list(Task.objects.for_tenant(tenant).filter(source=health.TASK_SOURCE).order_by("assignee_id"))


def test_it_disables_an_endpoint_that_failed_everything_for_5_days_and_tells_each_admin_once(tenant, receiver, admins):
    receiver.default = (500, {}, b"down")
    url = receiver.url + "/hooks/cs"
    t0 = timezone.now() + timedelta(seconds=30)
    message = enqueue(tenant, url)
    services.deliver(now=t0)
    endpoint = health.webhook_endpoint_get(tenant, url)
    assert (endpoint.failing_since, endpoint.failures, endpoint.last_error, endpoint.is_disabled) == (
        t0, 1, "HTTP 500", False)
    for day in range(1, 5):
        services.deliver(now=t0 + day * DAY)
    endpoint = reload(endpoint)
    assert (endpoint.failures, endpoint.is_disabled, tasks(tenant)) == (5, False, [])  # 4 days: still on

    services.deliver(now=t0 + 5 * DAY)  # the failure that completes 5 days
    endpoint = reload(endpoint)
    assert endpoint.disabled_at == t0 + 5 * DAY and "every attempt failed for 5 days" in endpoint.disabled_reason
    told = tasks(tenant)
    assert [t.assignee for t in told] == sorted(admins, key=lambda u: u.pk)
    assert {(t.priority, t.status, t.due_date) for t in told} == {
        ("high", "open", timezone.localdate(t0 + 5 * DAY))}
    assert url in told[0].description and "webhook_endpoint_enable" in told[0].description
    assert told[0].title == "Webhook endpoint disabled: 127.0.0.1"

    # further messages (and the retry of the first) go straight to dead: no request is made
    sent = len(receiver.requests)
    second = enqueue(tenant, url)
    services.deliver(now=t0 + 6 * DAY)
    assert len(receiver.requests) == sent
    for row in (reload(message), reload(second)):
        assert row.status == S.DEAD and row.error.startswith("endpoint disabled: " + url)
        assert "webhook_endpoint_enable" in row.error
    assert len(tasks(tenant)) == 2  # told once per disabling


def test_a_single_success_ends_the_failing_streak(tenant, receiver, admins):
    receiver.default = (503, {}, b"")
    url = receiver.url
    t0 = timezone.now() + timedelta(seconds=30)
    services.outbox_enqueue(tenant=tenant, channel="webhook", target=url, payload={}, retry_policy=({}, 1))
    services.deliver(now=t0)  # fails (and dies: one attempt only)
    receiver.respond(200)
    enqueue(tenant, url)
    services.deliver(now=t0 + 3 * DAY)  # gets through: the streak is over
    endpoint = reload(health.webhook_endpoint_get(tenant, url))
    assert (endpoint.failing_since, endpoint.failures, endpoint.last_success_at) == (None, 0, t0 + 3 * DAY)

    enqueue(tenant, url)
    services.deliver(now=t0 + 4 * DAY)  # a new streak starts
    services.deliver(now=t0 + 8 * DAY)
    endpoint = reload(endpoint)
    assert (endpoint.failing_since, endpoint.failures, endpoint.is_disabled) == (t0 + 4 * DAY, 2, False)
    services.deliver(now=t0 + 9 * DAY)
    assert reload(endpoint).disabled_at == t0 + 9 * DAY and len(tasks(tenant)) == len(admins)


def test_it_disables_once_when_several_messages_of_a_batch_fail_at_the_cutoff(tenant, receiver, admins):
    receiver.default = (500, {}, b"")
    url = receiver.url
    now = timezone.now() + timedelta(seconds=30)
    WebhookEndpoint.objects.create(tenant=tenant, url=url, url_hash=health.url_hash(url),
                                   failing_since=now - 5 * DAY, failures=40)
    rows = [enqueue(tenant, url) for _ in range(3)]
    services.deliver(now=now)
    assert len(receiver.requests) == 1  # the first failure disabled it; the rest of the batch was not sent
    assert sorted(reload(r).status for r in rows) == [S.DEAD, S.DEAD, S.FAILED]
    assert len(tasks(tenant)) == len(admins)


def test_it_is_per_tenant_and_url(tenant, other_tenant, receiver, admins):
    url = receiver.url + "/a"
    now = timezone.now() + timedelta(seconds=30)
    WebhookEndpoint.objects.create(tenant=tenant, url=url, url_hash=health.url_hash(url),
                                   failing_since=now - 9 * DAY, disabled_at=now - DAY, disabled_reason="test")
    other = enqueue(other_tenant, url)
    same_host = enqueue(tenant, receiver.url + "/b")
    blocked = enqueue(tenant, url)
    services.deliver(now=now)
    assert (reload(other).status, reload(same_host).status, reload(blocked).status) == (S.DELIVERED, S.DELIVERED,
                                                                                          S.DEAD)
    assert sorted(r["path"] for r in receiver.requests) == ["/a", "/b"]


def test_a_healthy_endpoint_costs_no_row(tenant, receiver):
    enqueue(tenant, receiver.url)
    services.deliver()
    assert not WebhookEndpoint.objects.exists()


def test_re_enabling_sends_again_and_requeues_what_died_meanwhile(tenant, receiver, admins):
    receiver.default = (500, {}, b"")
    url = receiver.url
    t0 = timezone.now() + timedelta(seconds=30)
    enqueue(tenant, url)
    services.deliver(now=t0)
    services.deliver(now=t0 + 5 * DAY)
    assert health.webhook_endpoint_get(tenant, url).is_disabled
    blocked = enqueue(tenant, url)
    services.deliver(now=t0 + 5 * DAY)
    assert reload(blocked).status == S.DEAD
    assert services.webhook_endpoint_enable(tenant, receiver.url + "/never-failed") is None

    receiver.default = (200, {}, b"ok")
    endpoint = services.webhook_endpoint_enable(tenant, url, requeue_dead=True)
    assert (endpoint.is_disabled, endpoint.failing_since, endpoint.failures) == (False, None, 0)
    blocked = reload(blocked)
    assert (blocked.status, blocked.attempts, blocked.error) == (S.PENDING, 0, "")
    services.deliver(now=t0 + 5 * DAY)
    assert reload(blocked).status == S.DELIVERED

    # a second disabling after another 5 days of failures tells the admins again
    receiver.default = (500, {}, b"")
    t1 = t0 + 10 * DAY
    enqueue(tenant, url)
    services.deliver(now=t1)
    services.deliver(now=t1 + 5 * DAY)
    assert health.webhook_endpoint_get(tenant, url).disabled_at == t1 + 5 * DAY
    assert len(tasks(tenant)) == 2 * len(admins)

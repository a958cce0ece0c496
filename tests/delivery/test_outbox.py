"""The outbox: signed delivery, retries with backoff, dead letters, re-queue, the sweeper, concurrency."""

import threading
from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.utils import timezone

from delivery import retry, secrets, services
from delivery.models import Outbox, WebhookSecret
from tests.factories import TenantFactory

pytestmark = pytest.mark.django_db
S = Outbox.Status


def enqueue(tenant, url, payload=None, **kwargs):
    return services.outbox_enqueue(tenant=tenant, channel="webhook", target=url,
                                   payload={"hello": "world"} if payload is None else payload, **kwargs)


def reload(message):
    message.refresh_from_db()
    return message


def test_it_delivers_a_webhook_after_commit_to_a_receiver_that_verifies_the_signature(tenant, receiver, on_commit):
    receiver.secrets = secrets.active_webhook_secrets(tenant.pk)
    with on_commit():
        message = enqueue(tenant, receiver.url + "/hooks/health", {"event_type": "health_score_drop"})
        assert receiver.requests == []  # nothing is sent before the transaction commits
    message = reload(message)
    assert (message.status, message.attempts, message.last_status_code) == (S.DELIVERED, 1, 200)
    assert message.last_response == '{"ok": true}' and message.delivered_at is not None
    [request] = receiver.requests
    assert request["verified"] is True
    assert request["path"] == "/hooks/health"
    assert request["headers"]["webhook-id"] == message.message_id
    assert request["headers"]["content-type"] == "application/json"
    assert receiver.json() == {"event_type": "health_score_drop"}


def test_it_is_rejected_by_a_receiver_holding_another_secret(tenant, receiver):
    receiver.secrets = [WebhookSecret(tenant=tenant).secret]  # not saved: the receiver's own, unrelated
    message = enqueue(tenant, receiver.url)
    services.deliver()
    assert reload(message).status == S.DEAD and reload(message).last_status_code == 401


def test_it_signs_with_the_old_and_the_new_secret_while_a_secret_is_rotated(tenant, receiver):
    old = secrets.active_webhook_secrets(tenant.pk)[0]
    new_row = secrets.webhook_secret_rotate(tenant, overlap=timedelta(hours=1))
    new = new_row.secret
    receiver.secrets = [old]
    enqueue(tenant, receiver.url)
    services.deliver()
    receiver.secrets = [new]
    enqueue(tenant, receiver.url)
    services.deliver()
    assert [r["verified"] for r in receiver.requests] == [True, True]
    assert len(receiver.requests[0]["headers"]["webhook-signature"].split(" ")) == 2
    # Secrets are encrypted at rest (random ciphertext), so the old one is found by what it is not.
    WebhookSecret.objects.for_tenant(tenant).exclude(pk=new_row.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert secrets.active_webhook_secrets(tenant.pk) == [new]


def test_it_retries_a_500_with_backoff_then_delivers_with_the_same_message_id(tenant, receiver):
    receiver.respond(500, 200)
    message = enqueue(tenant, receiver.url)
    before = timezone.now()
    services.deliver()
    message = reload(message)
    assert (message.status, message.attempts, message.last_status_code, message.error) == (S.FAILED, 1, 500, "HTTP 500")
    wait = (message.next_attempt_at - before).total_seconds()
    assert 5 * 0.8 - 0.5 <= wait <= 5 * 1.2 + 0.5  # the second delay of the default schedule, with jitter
    assert services.deliver().claimed == 0  # not due yet
    services.deliver(now=timezone.now() + timedelta(seconds=7))
    message = reload(message)
    assert (message.status, message.attempts, message.error) == (S.DELIVERED, 2, "")
    assert receiver.ids() == [message.message_id, message.message_id]


def test_it_marks_a_410_dead_after_one_attempt(tenant, receiver):
    receiver.respond((410, {}, b"gone"))
    message = enqueue(tenant, receiver.url)
    services.deliver(now=timezone.now() + timedelta(days=2))
    message = reload(message)
    assert (message.status, message.attempts, message.last_status_code, message.last_response) == (S.DEAD, 1, 410, "gone")
    assert len(receiver.requests) == 1


@pytest.mark.parametrize("status", [408, 429, 502, 503])
def test_it_retries_timeouts_rate_limits_and_server_errors(tenant, receiver, status):
    receiver.respond(status)
    message = enqueue(tenant, receiver.url)
    services.deliver()
    assert reload(message).status == S.FAILED


def test_it_honours_retry_after(tenant, receiver):
    receiver.respond((429, {"Retry-After": "120"}, b"slow down"))
    message = enqueue(tenant, receiver.url)
    before = timezone.now()
    services.deliver()
    assert (reload(message).next_attempt_at - before).total_seconds() >= 119


def test_it_gives_up_after_the_last_attempt(tenant, receiver):
    receiver.respond(500, 500)
    message = enqueue(tenant, receiver.url, retry_policy=retry.policy_for(config={"retry_count": 1}))
    services.deliver()
    services.deliver(now=timezone.now() + timedelta(minutes=1))
    message = reload(message)
    assert (message.status, message.attempts) == (S.DEAD, 2)
    assert message.error == "gave up after 2 attempts: HTTP 500"


@pytest.mark.parametrize("url", ["ftp://example.com/x", "http://", "not a url", "http://user:pw@127.0.0.1/x"])
def test_it_marks_an_invalid_url_dead_at_once(tenant, url):
    message = enqueue(tenant, url)
    services.deliver()
    message = reload(message)
    assert (message.status, message.attempts) == (S.DEAD, 1)
    assert message.error.startswith("refused:")


def test_it_retries_when_the_receiver_is_down(tenant, receiver):
    url = receiver.url
    receiver.close()
    message = enqueue(tenant, url)
    services.deliver()
    message = reload(message)
    assert message.status == S.FAILED and "Connect" in message.error


def test_it_requeues_a_dead_message_keeping_its_message_id(tenant, receiver, on_commit):
    receiver.respond(404, 200)
    message = enqueue(tenant, receiver.url)
    services.deliver()
    assert reload(message).status == S.DEAD
    with on_commit():
        services.outbox_requeue(message)
    message = reload(message)
    assert (message.status, message.attempts) == (S.DELIVERED, 1)
    assert receiver.ids() == [message.message_id] * 2
    with pytest.raises(ValidationError) as error:
        services.outbox_requeue(message)
    assert "only dead or failed" in str(error.value)


def test_it_is_idempotent_on_the_key_per_tenant(tenant, other_tenant):
    first = enqueue(tenant, "http://127.0.0.1/x", idempotency_key="run:1:0")
    again = enqueue(tenant, "http://127.0.0.1/x", idempotency_key="run:1:0")
    elsewhere = enqueue(other_tenant, "http://127.0.0.1/x", idempotency_key="run:1:0")
    assert again.pk == first.pk and elsewhere.pk != first.pk
    assert Outbox.objects.count() == 2


def test_it_waits_until_a_delayed_message_is_due(tenant, receiver):
    message = enqueue(tenant, receiver.url, deliver_at=timezone.now() + timedelta(hours=1))
    assert services.deliver().claimed == 0
    services.deliver(now=timezone.now() + timedelta(hours=1, seconds=1))
    assert reload(message).status == S.DELIVERED


def test_it_re_sends_a_message_stuck_in_sending_after_the_timeout(tenant, receiver, settings):
    message = enqueue(tenant, receiver.url)
    [claimed] = services.claim()  # a worker claimed it, then died before sending
    assert reload(message).status == S.SENDING
    assert services.reclaim_stuck() == 0  # not stuck yet
    later = timezone.now() + timedelta(seconds=settings.OUTBOX_SENDING_TIMEOUT + 1)
    assert services.reclaim_stuck(now=later) == 1
    assert reload(message).status == S.FAILED
    services.deliver(now=later)
    message = reload(message)
    assert (message.status, message.attempts) == (S.DELIVERED, 2)
    # The "dead" worker wakes up: its stale claim cannot overwrite the outcome.
    assert services.record(claimed, services.Result(False, error="late")) == ""
    assert reload(message).status == S.DELIVERED


def test_it_marks_a_stuck_message_without_attempts_left_dead(tenant, settings):
    message = enqueue(tenant, "http://127.0.0.1:9/x", retry_policy=retry.policy_for(config={"retry_count": 0}))
    services.claim()
    services.reclaim_stuck(now=timezone.now() + timedelta(seconds=settings.OUTBOX_SENDING_TIMEOUT + 1))
    message = reload(message)
    assert message.status == S.DEAD and "lost mid-send" in message.error


def test_it_gives_claimed_but_unsent_messages_back_when_out_of_time(tenant, receiver):
    messages = [enqueue(tenant, receiver.url) for _ in range(3)]
    stats = services.deliver(budget=-1)
    assert (stats.claimed, stats.released) == (3, 3)
    assert {(reload(m).status, m.attempts) for m in messages} == {(S.PENDING, 0)}


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(connection.vendor != "postgresql", reason="SKIP LOCKED is a PostgreSQL feature")
def test_it_never_delivers_a_message_twice_with_two_workers_claiming_at_once(receiver):
    tenant = TenantFactory()
    receiver.delay = 0.005
    with transaction.atomic():
        messages = [enqueue(tenant, receiver.url, {"n": n}, dispatch=False) for n in range(60)]
    barrier, results, errors = threading.Barrier(2), [], []

    def worker():
        try:
            barrier.wait()
            results.append(services.deliver(batch_size=3))
        except Exception as exc:  # pragma: no cover - shown in the assertion
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    ids = receiver.ids()
    assert len(ids) == len(set(ids)) == 60
    assert all(r.delivered > 0 for r in results)  # both workers took a share
    assert sum(r.delivered for r in results) == 60
    assert set(Outbox.objects.filter(pk__in=[m.pk for m in messages]).values_list("status", "attempts")) == {(S.DELIVERED, 1)}

"""/metrics read from the database (events, runs, steps, outbox, journeys, heartbeat) and from Redis (celery's
queues): the values after writing rows, whichever process wrote them."""

import datetime
import math

import pytest
import redis
from django.test import Client
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from automation.heartbeat import heartbeat_record
from automation.models import RunStep
from crm.models import CRMPlaybook, CRMPlaybookExecution
from delivery.models import Outbox
from tests.factories import AccountFactory, ContactFactory, EventFactory, OutboxFactory, RunFactory, WorkflowFactory

pytestmark = pytest.mark.django_db
REDIS_DB = "redis://127.0.0.1:6379/11"


def scrape() -> dict:
    """{(name, frozenset(labels)): value} of one scrape."""
    body = Client().get("/metrics").content.decode()
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(body) for s in family.samples}


def ago(**delta) -> datetime.datetime:
    return timezone.now() - datetime.timedelta(**delta)


def test_it_counts_pending_and_failed_events_and_the_oldest_pending_ones_age(tenant):
    EventFactory(tenant=tenant, created_at=ago(seconds=120))
    EventFactory(tenant=tenant)
    EventFactory(tenant=tenant, created_at=ago(hours=5), processed_at=ago(hours=5))
    EventFactory(tenant=tenant, created_at=ago(hours=3), failed_at=ago(hours=2), attempts=5)
    metrics = scrape()
    assert metrics[("automation_events_pending", frozenset())] == 2
    assert metrics[("automation_events_failed", frozenset())] == 1
    assert 119 <= metrics[("automation_event_oldest_pending_age_seconds", frozenset())] < 180


def test_no_pending_event_is_an_age_of_zero():
    assert scrape()[("automation_event_oldest_pending_age_seconds", frozenset())] == 0


def test_it_counts_the_runs_of_the_window_by_trigger_type_source_and_status(tenant):
    rule = WorkflowFactory(tenant=tenant, trigger_type="manual")
    other = WorkflowFactory(tenant=tenant, trigger_type="model_created", model_type="account", name="Other")
    for status in ("success", "success", "failed"):
        RunFactory(workflow=rule, status=status)
    RunFactory(workflow=other, status="skipped", skip_reason="conditions_not_met")
    RunFactory(workflow=rule, status="success", created_at=ago(hours=2))  # before the 1 h window
    metrics = scrape()

    def runs(trigger, status):
        labels = frozenset({"trigger_type": trigger, "source": "workflow", "status": status}.items())
        return metrics.get(("automation_runs_recent", labels))

    assert (runs("manual", "success"), runs("manual", "failed"), runs("model_created", "skipped")) == (2, 1, 1)


def test_it_makes_a_histogram_of_the_step_durations_of_the_window(tenant):
    run = RunFactory(workflow=WorkflowFactory(tenant=tenant), status="success")
    old = RunFactory(workflow=run.workflow, status="success", created_at=ago(hours=3))
    for position, ms in enumerate((3, 40, 700)):
        RunStep.objects.create(tenant=tenant, run=run, position=position, action_type="webhook", status="success",
                               duration_ms=ms)
    RunStep.objects.create(tenant=tenant, run=old, position=0, action_type="webhook", status="success", duration_ms=1)
    metrics = scrape()

    def bucket(le):
        return metrics[("automation_run_step_duration_seconds_bucket", frozenset({"action_type": "webhook", "le": le}.items()))]

    assert (bucket("0.005"), bucket("0.05"), bucket("0.5"), bucket("1"), bucket("+Inf")) == (1, 2, 2, 3, 3)
    assert metrics[("automation_run_step_duration_seconds_gsum", frozenset({"action_type": "webhook"}.items()))] == \
        pytest.approx(0.743)


def test_it_reports_the_outbox_backlog_the_oldest_due_message_and_the_dead_ones(tenant):
    OutboxFactory(tenant=tenant, next_attempt_at=ago(seconds=90))  # pending, due 90 s ago
    OutboxFactory(tenant=tenant, status=Outbox.Status.FAILED, next_attempt_at=ago(seconds=-600))  # retry not due yet
    OutboxFactory(tenant=tenant, status=Outbox.Status.SENDING, claimed_at=timezone.now())
    OutboxFactory(tenant=tenant, channel=Outbox.Channel.EMAIL, target="a@example.com", status=Outbox.Status.DEAD)
    OutboxFactory(tenant=tenant, channel=Outbox.Channel.EMAIL, target="b@example.com", status=Outbox.Status.DEAD)
    OutboxFactory(tenant=tenant, status=Outbox.Status.DELIVERED, delivered_at=timezone.now())
    metrics = scrape()

    def backlog(status):
        return metrics.get(("delivery_outbox_backlog", frozenset({"channel": "webhook", "status": status}.items())))

    assert (backlog("pending"), backlog("failed"), backlog("sending"), backlog("delivered")) == (1, 1, 1, None)
    assert 89 <= metrics[("delivery_outbox_oldest_due_age_seconds", frozenset())] < 150
    assert metrics[("delivery_outbox_dead", frozenset({"channel": "email"}.items()))] == 2


def test_it_counts_the_deliveries_of_the_window_by_outcome_and_their_latency(tenant):
    now = timezone.now()
    for seconds in (0.2, 3, 40):
        OutboxFactory(tenant=tenant, status=Outbox.Status.DELIVERED, created_at=now - datetime.timedelta(seconds=60),
                      delivered_at=now - datetime.timedelta(seconds=60 - seconds))
    OutboxFactory(tenant=tenant, status=Outbox.Status.DEAD)
    OutboxFactory(tenant=tenant, status=Outbox.Status.DELIVERED, created_at=ago(hours=2), delivered_at=ago(hours=2))
    metrics = scrape()

    def recent(status):
        return metrics.get(("delivery_messages_recent", frozenset({"channel": "webhook", "status": status}.items())))

    assert (recent("delivered"), recent("dead")) == (3, 1)

    def bucket(le):
        return metrics[("delivery_latency_seconds_bucket", frozenset({"channel": "webhook", "le": le}.items()))]

    assert (bucket("0.1"), bucket("0.25"), bucket("5"), bucket("30"), bucket("60"), bucket("+Inf")) == (0, 1, 2, 2, 3, 3)
    assert metrics[("delivery_latency_seconds_gsum", frozenset({"channel": "webhook"}.items()))] == pytest.approx(43.2)


def test_it_reports_the_journey_steps_due_and_the_step_schedulers_lag(tenant):
    account = AccountFactory(tenant=tenant)
    journey = CRMPlaybook.objects.create(tenant=tenant, name="metrics-journey")
    for due, status in ((ago(seconds=150), "active"), (ago(seconds=10), "active"), (ago(seconds=-3600), "active"),
                        (ago(hours=5), "completed")):
        CRMPlaybookExecution.objects.create(tenant=tenant, playbook=journey, account=account, next_step_at=due,
                                            contact=ContactFactory(tenant=tenant, account=account), status=status)
    metrics = scrape()
    assert metrics[("crm_steps_due", frozenset())] == 2
    assert 149 <= metrics[("crm_scheduler_lag_seconds", frozenset())] < 210


def test_it_reports_the_age_of_the_schedulers_heartbeat():
    assert math.isinf(scrape()[("scheduler_heartbeat_age_seconds", frozenset())])
    heartbeat_record(now=ago(seconds=42))
    assert 42 <= scrape()[("scheduler_heartbeat_age_seconds", frozenset())] < 100


@pytest.fixture
def broker(settings):
    settings.CELERY_BROKER_URL = REDIS_DB
    client = redis.Redis.from_url(REDIS_DB)
    keys = ["bulk", "events", "bulk\x06\x163"]
    client.delete(*keys)
    yield client
    client.delete(*keys)
    client.close()


def test_it_reads_the_celery_queue_lengths_from_redis(broker):
    broker.rpush("bulk", "a", "b")
    broker.rpush("bulk\x06\x163", "c")  # a priority sub-queue
    broker.rpush("events", "d")
    metrics = scrape()
    assert metrics[("celery_queue_length", frozenset({"queue": "bulk"}.items()))] == 3
    assert metrics[("celery_queue_length", frozenset({"queue": "events"}.items()))] == 1
    assert metrics[("celery_queue_length", frozenset({"queue": "delivery"}.items()))] == 0
    assert metrics[("celery_broker_up", frozenset())] == 1


def test_it_fails_soft_when_redis_is_down(settings):
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:9/0"  # nothing listens there
    response = Client().get("/metrics")
    assert response.status_code == 200
    metrics = scrape()
    assert metrics[("celery_broker_up", frozenset())] == 0
    assert not any(name == "celery_queue_length" for name, _ in metrics)
    assert ("automation_events_pending", frozenset()) in metrics  # the database's metrics are still there


def test_it_reports_no_queue_lengths_without_a_redis_broker(settings):
    settings.CELERY_BROKER_URL = "memory://"
    assert not any(name.startswith("celery_") for name, _ in scrape())

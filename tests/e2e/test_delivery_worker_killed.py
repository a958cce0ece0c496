"""Nothing lost: a worker process killed mid-batch leaves its messages in 'sending'; the sweeper puts them
back and every one is delivered, none more often than its attempts allow."""

import os
import subprocess
import sys
import threading
import time
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.utils import timezone

from delivery import services
from delivery.models import Outbox
from tests.factories import TenantFactory

from .celery_workers import ROOT, database_url

pytestmark = [
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="needs a database a second process can share"),
]

WORKER = "import django; django.setup(); from delivery import services; services.deliver(batch_size=10)"


def test_it_delivers_every_message_of_a_batch_whose_worker_was_killed_mid_send(receiver, settings):
    tenant = TenantFactory()
    with transaction.atomic():
        messages = [services.outbox_enqueue(tenant=tenant, channel="webhook", target=receiver.url, payload={"n": n},
                                            dispatch=False) for n in range(5)]
    receiver.gate = threading.Event()  # the first request hangs: the worker is killed while sending it
    env = {**os.environ, "DATABASE_URL": database_url(), "DJANGO_SETTINGS_MODULE": "csplatform.settings_test"}
    worker = subprocess.Popen([sys.executable, "-c", WORKER], env=env, cwd=ROOT)
    try:
        deadline = time.monotonic() + 30
        while not receiver.requests and time.monotonic() < deadline and worker.poll() is None:
            time.sleep(0.05)
        assert receiver.requests, "the worker never sent anything"
    finally:
        worker.kill()
        worker.wait()
    receiver.gate.set()
    receiver.gate = None
    assert set(Outbox.objects.values_list("status", "attempts")) == {("sending", 1)}  # the whole batch was claimed

    later = timezone.now() + timedelta(seconds=settings.OUTBOX_SENDING_TIMEOUT + 1)
    assert services.reclaim_stuck(now=later) == 5
    services.deliver(now=later)

    rows = Outbox.objects.filter(pk__in=[m.pk for m in messages])
    assert set(rows.values_list("status", "attempts")) == {("delivered", 2)}
    assert all(row.attempts <= row.max_attempts for row in rows)
    ids = receiver.ids()
    assert set(ids) == {m.message_id for m in messages}
    assert len(ids) == 6  # the message in flight when the worker died went out twice (at least once), same id

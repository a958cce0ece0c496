"""The embedded demo (``seed_demo``, ``crm_payment failed``, then ``tick``): the payment rescue reaches its
20 % chat step and issues the code. The demo's contacts have a Telegram chat and, embedded, Telegram
messages are printed (``TELEGRAM_API_URL=console``): nothing leaves the machine."""

import io
import re

import pytest
from django.core.management import call_command
from django.utils import timezone

from accounts.demo import demo_seed
from accounts.models import Account
from crm.models import CRMDiscountCode, CRMPlaybookExecution
from crm.scheduler import execute_pending_steps
from delivery.models import Outbox
from delivery.services import deliver

from .conftest import hours, steps_of

pytestmark = pytest.mark.django_db


def test_the_demos_payment_rescue_issues_its_discount_code_over_telegram(settings, capsys,
                                                                         django_capture_on_commit_callbacks):
    settings.TELEGRAM_API_URL = "console"  # the embedded default
    tenant = demo_seed()
    techstart = Account.objects.for_tenant(tenant).get(name="TechStart Solutions")
    with django_capture_on_commit_callbacks(execute=True):  # the engine starts the rescue on commit
        call_command("crm_payment", "failed", "--tenant", "acme-corp", "--account", str(techstart.pk),
                     "--amount", "49.00", stdout=io.StringIO())
    execution = CRMPlaybookExecution.objects.for_tenant(tenant).get(playbook__name="payment_failed_rescue")
    assert execution.contact.phone == ""  # the demo's champion has no phone: chat over SMS cannot reach them

    start = timezone.now()
    for hour in range(24, 49):  # the demo's tick, an hour at a time, until the chat step has run
        execute_pending_steps(now=start + hours(hour))
        if steps_of(execution)[1].status not in ("scheduled", "deferred"):
            break
    deliver()

    chat = steps_of(execution)[1]
    assert (chat.status, chat.error) == ("sent", "sent over telegram instead: sms: the contact has no phone number")
    code = CRMDiscountCode.objects.for_tenant(tenant).get(execution=execution)
    assert re.fullmatch(r"CRM20-[A-Z2-9]{10}", code.code) and chat.discount_code == code
    message = Outbox.objects.for_tenant(tenant).get(message_id=chat.outbox_message_id)
    assert (message.channel, message.target) == ("telegram", execution.contact.telegram_chat_id)
    assert message.status == Outbox.Status.DELIVERED
    assert code.code in capsys.readouterr().out

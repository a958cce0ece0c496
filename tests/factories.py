"""factory_boy factories for the customer data model, the automation rules and the delivery outbox.
``TenantFactory`` also creates the journey stages; ``WorkflowFactory`` and ``EmailTemplateFactory`` save
through their app's service (validated, versioned, audited), as every real front door does."""

import datetime
from decimal import Decimal

import factory
from django.contrib.auth import get_user_model
from django.utils import timezone

from accounts import services
from accounts.tokens import api_token_issue
from accounts.models import (
    Account, Contact, Engagement, Goal, Membership, Note, Opportunity, Role, SupportTicket, SurveyResponse, Tag, Task, Tenant,
    UsageMetric,
)
from automation.definitions import RULE_FIELDS
from automation.models import Event, Run, Workflow
from automation.services import workflow_save
from delivery.email import email_template_save
from delivery.models import EmailTemplate, IntegrationCredential, Outbox


class TenantFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Tenant

    slug = factory.Sequence(lambda n: f"tenant-{n}")
    name = factory.Sequence(lambda n: f"Tenant {n}")

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        tenant = services.tenant_create(slug=kwargs.pop("slug"), name=kwargs.pop("name"))
        for field, value in kwargs.items():
            setattr(tenant, field, value)
        if kwargs:
            tenant.save()
        return tenant


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"user{n}@example.com")
    email = factory.LazyAttribute(lambda u: u.username)
    first_name = "Casey"
    last_name = "Manager"
    password = factory.django.Password("pass-word-123")


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    user = factory.SubFactory(UserFactory)
    tenant = factory.SubFactory(TenantFactory)
    role = Role.TENANT_ADMIN


class AccountFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Account

    tenant = factory.SubFactory(TenantFactory)
    name = factory.Sequence(lambda n: f"Account {n}")
    industry = "Software"
    size = Account.Size.SMB
    arr = Decimal("50000")
    renewal_date = factory.LazyFunction(lambda: timezone.localdate() + datetime.timedelta(days=120))


class ContactFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Contact

    account = factory.SubFactory(AccountFactory)
    tenant = factory.LazyAttribute(lambda c: c.account.tenant)
    name = factory.Sequence(lambda n: f"Contact {n}")
    email = factory.Sequence(lambda n: f"contact{n}@customer.test")


class OpportunityFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Opportunity

    account = factory.SubFactory(AccountFactory)
    tenant = factory.LazyAttribute(lambda o: o.account.tenant)
    name = factory.Sequence(lambda n: f"Renewal {n}")
    kind = "renewal"
    stage = "prospecting"
    value = 10000


class TagFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Tag

    tenant = factory.SubFactory(TenantFactory)
    name = factory.Sequence(lambda n: f"tag-{n}")


class UsageMetricFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = UsageMetric

    account = factory.SubFactory(AccountFactory)
    tenant = factory.LazyAttribute(lambda m: m.account.tenant)
    date = factory.Sequence(lambda n: timezone.localdate() - datetime.timedelta(days=n))
    active_users = 20
    logins = 40
    dau = 10
    mau = 30
    session_minutes = 300
    features_used = factory.LazyFunction(lambda: ["dashboards", "reports"])


class SurveyResponseFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = SurveyResponse

    account = factory.SubFactory(AccountFactory)
    tenant = factory.LazyAttribute(lambda r: r.account.tenant)
    kind = SurveyResponse.Kind.NPS
    score = 8


class SupportTicketFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = SupportTicket

    account = factory.SubFactory(AccountFactory)
    tenant = factory.LazyAttribute(lambda t: t.account.tenant)
    subject = factory.Sequence(lambda n: f"Ticket {n}")


class EngagementFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Engagement

    account = factory.SubFactory(AccountFactory)
    tenant = factory.LazyAttribute(lambda e: e.account.tenant)
    kind = Engagement.Kind.MEETING
    outcome = Engagement.Outcome.COMPLETED


class GoalFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Goal

    account = factory.SubFactory(AccountFactory)
    tenant = factory.LazyAttribute(lambda g: g.account.tenant)
    title = factory.Sequence(lambda n: f"Goal {n}")


class TaskFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Task

    account = factory.SubFactory(AccountFactory)
    tenant = factory.LazyAttribute(lambda t: t.account.tenant)
    title = factory.Sequence(lambda n: f"Task {n}")


class NoteFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Note

    account = factory.SubFactory(AccountFactory)
    tenant = factory.LazyAttribute(lambda n: n.account.tenant)
    body = "Spoke with the champion about the renewal."


class WorkflowFactory(factory.django.DjangoModelFactory):
    """A rule, saved through ``automation.services.workflow_save`` as the API and the admin save one (so it is
    validated and normalised, gets version 1 and an audit entry; a bad rule raises ValidationError). By default
    an active manual rule named "Rule" without actions. Every rule field goes to the service, and so do
    ``scope_accounts``, ``publish`` and ``actor`` (who saves it); other fields (``created_by``) are set on the
    row first. ``WorkflowFactory.build()`` gives an unsaved row."""

    class Meta:
        model = Workflow

    tenant = factory.SubFactory(TenantFactory)
    name = "Rule"
    status = "active"
    trigger_type = "manual"

    @classmethod
    def _create(cls, model_class, *args, tenant, actor=None, **data):
        row_fields = {name: data.pop(name) for name in list(data)
                      if name not in (*RULE_FIELDS, "scope_accounts", "publish")}
        return workflow_save(rule=model_class(tenant=tenant, **row_fields), data=data, actor=actor)


class RunFactory(factory.django.DjangoModelFactory):
    """A run row written directly (no engine): for the pages and APIs that list runs."""

    class Meta:
        model = Run

    workflow = factory.SubFactory(WorkflowFactory)
    tenant = factory.LazyAttribute(lambda r: r.workflow.tenant)


class EventFactory(factory.django.DjangoModelFactory):
    """An automation event, pending. Given ``account``, it is that account's event (tenant, model and id)."""

    class Meta:
        model = Event

    account = None
    tenant = factory.Maybe("account", factory.SelfAttribute("account.tenant"), factory.SubFactory(TenantFactory))
    type = "model_updated"
    model = factory.Maybe("account", "account", "")
    object_id = factory.Maybe("account", factory.LazyAttribute(lambda e: str(e.account.pk)), "")


class OutboxFactory(factory.django.DjangoModelFactory):
    """An outbox message written directly (not through ``delivery.services.outbox_enqueue``, so nothing is
    dispatched): a pending webhook to https://hooks.example.com/<n>."""

    class Meta:
        model = Outbox

    tenant = factory.SubFactory(TenantFactory)
    channel = Outbox.Channel.WEBHOOK
    target = factory.Sequence(lambda n: f"https://hooks.example.com/{n}")
    payload = factory.Sequence(lambda n: {"n": n})
    idempotency_key = factory.Sequence(lambda n: f"test:{n}")


class EmailTemplateFactory(factory.django.DjangoModelFactory):
    """An email template, saved through ``delivery.email.email_template_save`` (its variables, template syntax
    and variants validated; a bad template raises ValidationError)."""

    class Meta:
        model = EmailTemplate

    tenant = factory.SubFactory(TenantFactory)
    name = factory.Sequence(lambda n: f"template-{n}")
    subject = "Hi {{ account.name }}"
    html = "<p>Dear {{ contact.first_name }}</p>"

    @classmethod
    def _create(cls, model_class, *args, tenant, **data):
        return email_template_save(template=model_class(tenant=tenant), data=data)


class IntegrationCredentialFactory(factory.django.DjangoModelFactory):
    """A tenant's credential for an integration (Slack by default) whose token is "<integration>-token"."""

    class Meta:
        model = IntegrationCredential

    tenant = factory.SubFactory(TenantFactory)
    integration = IntegrationCredential.Integration.SLACK
    token = factory.LazyAttribute(lambda c: f"{c.integration}-token")


def health_score(account, **components):
    """Record a health score through the service (the only way scores are written)."""
    components = components or {"usage_score": 70, "engagement_score": 70, "support_sentiment_score": 70,
                                "adoption_score": 70}
    return services.health_score_record(account=account, components=components)


def token_for(user, **options) -> str:
    """The key of a new API token of ``user`` (``name``, ``ttl``: as ``api_token_issue``)."""
    return api_token_issue(user=user, **{"name": "test", **options})[1]


def staff(tenant, role=Role.TENANT_ADMIN):
    """A staff user (one who may log in to the admin site) with ``role`` in ``tenant``."""
    return MembershipFactory(tenant=tenant, role=role, user__is_staff=True).user

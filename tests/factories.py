"""factory_boy factories for the customer data model. ``TenantFactory`` also creates the journey stages."""

import datetime
from decimal import Decimal

import factory
from django.contrib.auth import get_user_model
from django.utils import timezone
from rest_framework.authtoken.models import Token

from accounts import services
from accounts.models import (
    Account, Contact, Engagement, Goal, Membership, Note, Role, SupportTicket, SurveyResponse, Tag, Task, Tenant,
    UsageMetric,
)


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


def health_score(account, **components):
    """Record a health score through the service (the only way scores are written)."""
    components = components or {"usage_score": 70, "engagement_score": 70, "support_sentiment_score": 70,
                                "adoption_score": 70}
    return services.health_score_record(account=account, components=components)


def token_for(user) -> str:
    return Token.objects.get_or_create(user=user)[0].key

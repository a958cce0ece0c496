"""The create_tenant and seed_demo management commands (DESIGN.md, public interface)."""

import io
from decimal import Decimal

import pytest
from django.contrib.auth import authenticate, get_user_model
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from accounts.models import (
    DEFAULT_STAGES, Account, Contact, Engagement, Goal, HealthScore, JourneyHistory, JourneyStage, Membership,
    Note, Opportunity, Role, SupportTicket, SurveyResponse, Tag, Task, Tenant, UsageMetric,
)
from csplatform.tenancy import tenant_context

pytestmark = pytest.mark.django_db

SEVEN_STAGES = ["Onboarding", "Adoption", "Value Realization", "Expansion", "Renewal", "At Risk", "Churn"]
SEEDED = (Tenant, Membership, JourneyStage, JourneyHistory, Account, Tag, Contact, HealthScore, UsageMetric,
          SurveyResponse, SupportTicket, Engagement, Goal, Task, Note, get_user_model())


def run(*args, **options) -> str:
    """Run a command as from a shell: no tenant scope is open (nothing is visible under row-level security)."""
    out = io.StringIO()
    with tenant_context(None):
        call_command(*args, stdout=out, stderr=io.StringIO(), **options)
    return out.getvalue()


def create_tenant(slug="acme", name="Acme", email="a@x.com", password="S3cure-pass-word!") -> dict:
    output = run("create_tenant", slug, name, "--admin-email", email, "--admin-password", password)
    return dict(line.split(": ", 1) for line in output.strip().splitlines())


def client_for(token: str, tenant_header: str | None = None) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}",
                       **({"HTTP_X_TENANT_ID": tenant_header} if tenant_header else {}))
    return client


def counts() -> dict[str, int]:
    return {model.__name__: model.objects.count() for model in SEEDED}


# --- create_tenant -------------------------------------------------------------------------------

def test_it_prints_the_tenant_id_slug_number_and_api_token():
    printed = create_tenant()
    assert set(printed) == {"tenant_id", "tenant_slug", "tenant_number", "api_token"}
    tenant = Tenant.objects.get(slug="acme")
    assert printed["tenant_id"] == str(tenant.pk)
    assert printed["tenant_slug"] == "acme"
    assert printed["tenant_number"] == str(tenant.number)
    assert tenant.name == "Acme"
    membership = Membership.objects.get(tenant=tenant)
    assert (membership.user.email, membership.role) == ("a@x.com", Role.TENANT_ADMIN)
    assert authenticate(username="a@x.com", password="S3cure-pass-word!") == membership.user


def test_it_gives_a_token_that_opens_the_new_tenants_empty_api():
    printed = create_tenant()
    response = client_for(printed["api_token"]).get("/api/accounts/")
    assert response.status_code == 200, response.content
    assert response.json()["results"] == []
    assert client_for("not-a-token").get("/api/accounts/").status_code == 401


def test_it_gives_the_new_tenant_the_seven_journey_stages_in_order():
    printed = create_tenant()
    stages = JourneyStage.objects.for_tenant(printed["tenant_id"]).order_by("order")
    assert [s.name for s in stages] == SEVEN_STAGES == DEFAULT_STAGES
    assert [s.order for s in stages] == list(range(1, 8))
    response = client_for(printed["api_token"]).get("/api/journey-stages/")
    assert response.status_code == 200, response.content
    body = response.json()
    rows = body["results"] if isinstance(body, dict) else body
    assert [row["name"] for row in rows] == SEVEN_STAGES


def test_it_is_idempotent_when_run_again():
    first = create_tenant()
    before = counts()
    second = create_tenant()
    # only the token is new: a key is shown once, so each run issues one (and the first still works)
    assert {**second, "api_token": None} == {**first, "api_token": None}
    assert second["api_token"] != first["api_token"]
    for printed in (first, second):
        assert client_for(printed["api_token"]).get("/api/accounts/").status_code == 200
    assert counts() == before
    assert JourneyStage.objects.for_tenant(first["tenant_id"]).count() == 7
    assert Membership.objects.filter(tenant_id=first["tenant_id"]).count() == 1


def test_it_renames_the_tenant_when_run_again_with_a_new_name():
    first = create_tenant(name="Acme")
    second = create_tenant(name="Acme Inc.")
    assert second["tenant_id"] == first["tenant_id"]
    assert Tenant.objects.get(slug="acme").name == "Acme Inc."


@pytest.mark.parametrize("slug", ["Acme", "acme corp", "acme_corp", "-acme", "acme-", "acme--corp", "", "a" * 64])
def test_it_refuses_a_bad_slug(slug):
    with pytest.raises(CommandError):
        create_tenant(slug=slug)
    assert not Tenant.objects.exists()
    assert not get_user_model().objects.filter(email="a@x.com").exists()


@pytest.mark.parametrize("email", ["not-an-email", ""])
def test_it_refuses_a_bad_admin_email(email):
    with pytest.raises(CommandError):
        create_tenant(email=email)
    assert not Tenant.objects.exists()


def test_it_refuses_an_empty_tenant_name():
    with pytest.raises(CommandError):
        create_tenant(name="  ")
    assert not Tenant.objects.exists()


def test_it_warns_about_a_weak_password_on_stderr_but_creates_the_tenant():
    err = io.StringIO()
    with tenant_context(None):
        call_command("create_tenant", "weak", "Weak", "--admin-email", "w@x.com", "--admin-password", "password123",
                     stdout=io.StringIO(), stderr=err)
    assert "weak admin password" in err.getvalue()
    assert Tenant.objects.filter(slug="weak").exists()


# --- seed_demo -----------------------------------------------------------------------------------

@pytest.fixture
def demo():
    run("seed_demo")
    return Tenant.objects.get(slug="acme-corp")


def test_it_seeds_the_demo_tenant_and_its_admin(demo):
    assert demo.name == "Acme Corporation"
    admin = authenticate(username="admin@acme.com", password="password123")
    assert admin is not None
    assert Membership.objects.get(user=admin, tenant=demo).role == Role.TENANT_ADMIN
    assert [s.name for s in JourneyStage.objects.for_tenant(demo).order_by("order")] == SEVEN_STAGES


def test_it_seeds_the_three_accounts_with_their_health(demo):
    accounts = {a.name: a for a in Account.objects.for_tenant(demo).select_related("parent", "current_stage")}
    assert {name: (a.health_score, a.get_risk_level_display()) for name, a in accounts.items()} == {
        "GlobalTech Corporation": (Decimal("85.00"), "Healthy"),
        "GlobalTech Europe": (Decimal("72.00"), "Moderate"),
        "TechStart Solutions": (Decimal("35.00"), "Critical"),
    }
    assert accounts["GlobalTech Europe"].parent == accounts["GlobalTech Corporation"]
    assert accounts["GlobalTech Corporation"].parent is None
    techstart = accounts["TechStart Solutions"]
    assert techstart.current_stage.name == "At Risk"
    latest = HealthScore.objects.filter(account=techstart).latest()
    assert latest.overall_score == Decimal("35.00")
    assert latest.previous_score == Decimal("65.00")


def test_it_seeds_usage_feedback_tickets_and_notes(demo):
    for account in Account.objects.for_tenant(demo):
        usage = UsageMetric.objects.for_tenant(demo).filter(account=account)
        assert usage.count() == 30, account.name
        assert usage.values("date").distinct().count() == 30
        assert SurveyResponse.objects.filter(account=account).exists(), account.name
        assert JourneyHistory.objects.filter(account=account, exited_at__isnull=True).count() == 1
    techstart = Account.objects.for_tenant(demo).get(name="TechStart Solutions")
    assert SurveyResponse.objects.filter(account=techstart, kind="nps", score__lte=6).exists()
    assert SupportTicket.objects.for_tenant(demo).filter(account=techstart, status="open").exists()
    assert Note.objects.for_tenant(demo).filter(account=techstart).exists()
    assert Task.objects.for_tenant(demo).exists()


def test_it_seeds_a_renewal_per_account_and_globaltechs_expansion(demo):
    deals = Opportunity.objects.for_tenant(demo).select_related("account")
    renewals = {d.account.name: (d.value, d.close_date) for d in deals.filter(kind="renewal")}
    assert renewals == {a.name: (a.arr, a.renewal_date) for a in Account.objects.for_tenant(demo)}
    assert [(d.account.name, d.stage) for d in deals.filter(kind="expansion")] == [("GlobalTech Corporation", "proposal")]


def test_it_changes_nothing_when_seeded_twice(demo):
    before = counts()
    output = run("seed_demo")
    assert counts() == before
    assert "TechStart Solutions: health 35.00 (Critical)" in output


def test_it_keeps_the_demo_data_from_another_tenant(demo):
    other = create_tenant(slug="other", name="Other", email="o@x.com")
    acme_id = str(demo.pk)
    for path in ("/api/accounts/", "/api/contacts/", "/api/health-scores/"):
        response = client_for(other["api_token"]).get(path)
        assert response.status_code == 200, (path, response.content)
        assert response.json()["results"] == [], path
        for header in (acme_id, "acme-corp"):
            response = client_for(other["api_token"], tenant_header=header).get(path)
            assert response.status_code == 403, (path, header, response.content)
    # the demo admin does see them
    login = APIClient().post("/api/auth/token/", {"username": "admin@acme.com", "password": "password123"})
    response = client_for(login.json()["token"]).get("/api/accounts/")
    assert response.status_code == 200
    assert response.json()["count"] == 3

"""The CSM admin: tenant scoping of lists, pages and choices, roles from memberships, and writes that
go through the services (hierarchy, health scores, journey moves)."""

import datetime
from decimal import Decimal

import pytest
from django.contrib import admin as django_admin
from django.contrib.auth import get_user_model
from django.urls import reverse
from django.utils import timezone

from accounts import services
from accounts.models import (
    Account, Contact, HealthScore, JourneyHistory, JourneyStage, Membership, Note, Opportunity, Role, SurveyResponse,
    Tag, Task,
)
from playbooks.models import PlaybookExecution
from tests.factories import (
    AccountFactory, ContactFactory, MembershipFactory, NoteFactory, OpportunityFactory, TagFactory, TaskFactory, TenantFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db


def staff(tenant, role=Role.PRACTITIONER, **user_fields):
    """A staff user with ``role`` in ``tenant``."""
    user_fields = {f"user__{name}": value for name, value in user_fields.items()}
    return MembershipFactory(tenant=tenant, role=role, user__is_staff=True, **user_fields).user


def grant(user, tenant, role=Role.PRACTITIONER):
    Membership.objects.create(user=user, tenant=tenant, role=role)
    return user


def url(model: str, view: str, *args) -> str:
    return reverse(f"admin:accounts_{model}_{view}", args=args)


def management_data(page) -> dict:
    """The management forms of every inline on a rendered admin form, as a browser would post them."""
    data = {}
    for inline in page.context.get("inline_admin_formsets", []):
        formset = inline.formset
        data.update({f"{formset.prefix}-{key}": value for key, value in formset.management_form.initial.items()})
    return data


def post_form(client, address: str, data: dict):
    """GET the form (as a browser would), then POST ``data`` with the inlines' management forms."""
    page = client.get(address)
    assert page.status_code == 200, page.status_code
    return client.post(address, {**management_data(page), **data})


def split_now() -> dict[str, str]:
    now = timezone.localtime()
    return {"0": now.strftime("%Y-%m-%d"), "1": now.strftime("%H:%M:%S")}


def account_data(**fields) -> dict:
    return {"name": "New Co", "status": Account.Status.ACTIVE, "arr": "1000", **fields}


def form_errors(response) -> dict:
    return response.context["adminform"].form.errors


def changelist_names(response) -> set[str]:
    return {str(obj) for obj in response.context["cl"].result_list}


# --- tenant scoping ------------------------------------------------------------------------------

def test_it_lists_only_the_staff_users_tenant_accounts(client, tenant, other_tenant):
    AccountFactory(tenant=tenant, name="Mine")
    AccountFactory(tenant=other_tenant, name="Theirs")
    client.force_login(staff(tenant))

    response = client.get(url("account", "changelist"))

    assert response.status_code == 200
    assert changelist_names(response) == {"Mine"}
    assert b"Theirs" not in response.content


def test_it_does_not_open_another_tenants_account(client, tenant, other_tenant):
    theirs = AccountFactory(tenant=other_tenant, name="Theirs")
    client.force_login(staff(tenant, Role.TENANT_ADMIN))

    for view in ("change", "delete", "history"):
        response = client.get(url("account", view, theirs.pk))
        assert response.status_code in (302, 404), view
        assert b"Theirs" not in response.content
    response = client.post(url("account", "change", theirs.pk), account_data(name="Hijacked"))
    assert response.status_code in (302, 404)
    theirs.refresh_from_db()
    assert theirs.name == "Theirs"


def test_it_offers_only_own_tenant_accounts_in_the_contact_form(client, tenant, other_tenant):
    mine = AccountFactory(tenant=tenant)
    theirs = AccountFactory(tenant=other_tenant)
    client.force_login(staff(tenant))

    page = client.get(url("contact", "add"))
    assert list(page.context["adminform"].form.fields["account"].queryset) == [mine]

    response = client.post(url("contact", "add"), {"account": theirs.pk, "name": "Spy"})
    assert response.status_code == 200
    assert "account" in form_errors(response)
    assert not Contact.objects.filter(name="Spy").exists()


def test_it_autocompletes_only_own_tenant_accounts(client, tenant, other_tenant):
    AccountFactory(tenant=tenant, name="Acme Mine")
    AccountFactory(tenant=other_tenant, name="Acme Theirs")
    client.force_login(staff(tenant))

    response = client.get(
        reverse("admin:autocomplete"),
        {"app_label": "accounts", "model_name": "contact", "field_name": "account", "term": "Acme"},
    )

    assert response.status_code == 200
    assert [r["text"] for r in response.json()["results"]] == ["Acme Mine"]


def test_it_offers_only_members_of_the_tenant_as_owners(client, tenant, other_tenant):
    user = staff(tenant, email="csm@a.test", username="csm@a.test")
    staff(other_tenant, email="csm@b.test", username="csm@b.test")
    client.force_login(user)

    page = client.get(url("account", "add"))

    owners = {u.email for u in page.context["adminform"].form.fields["owner"].queryset}
    assert owners == {"csm@a.test"}


def test_it_shows_a_superuser_every_tenant(client, tenant, other_tenant):
    AccountFactory(tenant=tenant, name="Mine")
    theirs = AccountFactory(tenant=other_tenant, name="Theirs")
    root = UserFactory(is_staff=True, is_superuser=True)
    client.force_login(root)

    response = client.get(url("account", "changelist"))

    assert changelist_names(response) == {"Mine", "Theirs"}
    assert "tenant" in response.context["cl"].list_display
    assert client.get(url("account", "change", theirs.pk)).status_code == 200
    assert client.get(url("tenant", "changelist")).status_code == 200


# --- roles ---------------------------------------------------------------------------------------

def test_it_lets_a_viewer_view_but_not_add_or_change_accounts(client, tenant):
    account = AccountFactory(tenant=tenant, name="Mine")
    client.force_login(staff(tenant, Role.VIEWER))

    assert client.get(url("account", "changelist")).status_code == 200
    page = client.get(url("account", "change", account.pk))
    assert page.status_code == 200
    assert page.context["has_change_permission"] is False
    assert client.get(url("account", "add")).status_code == 403
    assert client.post(url("account", "add"), account_data()).status_code == 403
    assert client.post(url("account", "change", account.pk), account_data(name="Renamed")).status_code == 403
    assert client.get(url("note", "add")).status_code == 403
    account.refresh_from_db()
    assert account.name == "Mine"


def test_it_lets_a_contributor_add_a_note_but_not_an_account(client, tenant):
    account = AccountFactory(tenant=tenant)
    user = staff(tenant, Role.CONTRIBUTOR)
    client.force_login(user)

    response = client.post(url("note", "add"), {"account": account.pk, "body": "Champion is leaving."})

    assert response.status_code == 302, form_errors(response)
    note = Note.objects.get(body="Champion is leaving.")
    assert (note.tenant, note.author) == (tenant, user)
    assert client.get(url("account", "add")).status_code == 403
    assert client.get(url("task", "add")).status_code == 200
    assert client.get(url("engagement", "add")).status_code == 200
    assert client.get(url("contact", "add")).status_code == 403
    # Contributors create notes; changing them is for managers, as in the API.
    assert client.post(url("note", "change", note.pk), {"account": account.pk, "body": "Edited"}).status_code == 403


def test_it_lets_only_tenant_admins_change_journey_stages(client, tenant):
    stage = JourneyStage.objects.for_tenant(tenant).get(name="Onboarding")
    client.force_login(staff(tenant, Role.PRACTITIONER))
    assert client.get(url("journeystage", "change", stage.pk)).status_code == 200
    assert client.get(url("journeystage", "add")).status_code == 403

    client.force_login(staff(tenant, Role.TENANT_ADMIN))
    response = client.post(url("journeystage", "add"), {"name": "Advocacy", "order": 8, "description": ""})
    assert response.status_code == 302, form_errors(response)
    assert JourneyStage.objects.for_tenant(tenant).filter(name="Advocacy").exists()


def test_it_hides_tenant_settings_and_memberships_from_non_admins(client, tenant):
    client.force_login(staff(tenant, Role.PRACTITIONER))

    index = client.get(reverse("admin:index"))

    models = {m["object_name"] for app in index.context["app_list"] for m in app["models"]}
    assert {"Account", "Contact", "HealthScore", "Note"} <= models
    assert not {"Tenant", "Membership"} & models
    assert client.get(url("tenant", "changelist")).status_code == 403
    assert client.get(url("membership", "changelist")).status_code == 403


# --- the tenant of new rows ----------------------------------------------------------------------

def test_it_creates_an_account_in_the_users_only_tenant(client, tenant):
    client.force_login(staff(tenant))

    page = client.get(url("account", "add"))
    assert "tenant_choice" not in page.context["adminform"].form.fields
    response = post_form(client, url("account", "add"), account_data(name="New Co"))

    assert response.status_code == 302, form_errors(response)
    assert Account.objects.get(name="New Co").tenant == tenant


def test_it_asks_a_user_of_several_tenants_which_tenant(client, tenant, other_tenant):
    user = grant(staff(tenant), other_tenant)
    client.force_login(user)

    missing = post_form(client, url("account", "add"), account_data(name="Where", **{
        "contacts-TOTAL_FORMS": "1", "contacts-0-name": "Early Contact"}))
    assert missing.status_code == 200
    assert "tenant_choice" in form_errors(missing)
    contact_errors = [i.formset.errors for i in missing.context["inline_admin_formsets"] if i.formset.model is Contact]
    assert contact_errors == [[{}]]  # the account's error is enough; its new contact is not blamed

    created = post_form(client, url("account", "add"), account_data(name="There", tenant_choice=other_tenant.pk))
    assert created.status_code == 302, form_errors(created)
    assert Account.objects.get(name="There").tenant == other_tenant


def test_it_takes_a_tasks_tenant_from_its_account_or_the_choice(client, tenant, other_tenant):
    user = grant(staff(tenant), other_tenant)
    theirs = AccountFactory(tenant=other_tenant)
    client.force_login(user)
    task = {"title": "Call back", "priority": "medium", "status": "open", "description": "", "source": ""}

    from_account = client.post(url("task", "add"), {**task, "account": theirs.pk})
    unplaced = client.post(url("task", "add"), {**task, "title": "Nowhere"})
    chosen = client.post(url("task", "add"), {**task, "title": "Internal", "tenant_choice": tenant.pk})
    clash = client.post(url("task", "add"), {**task, "title": "Clash", "account": theirs.pk, "tenant_choice": tenant.pk})

    assert from_account.status_code == 302, form_errors(from_account)
    assert Task.objects.get(title="Call back").tenant == other_tenant
    assert unplaced.status_code == 200 and "tenant_choice" in form_errors(unplaced)
    assert chosen.status_code == 302, form_errors(chosen)
    assert (Task.objects.get(title="Internal").tenant, Task.objects.get(title="Internal").created_by) == (tenant, user)
    assert clash.status_code == 200 and "tenant_choice" in form_errors(clash)


def test_it_does_not_let_a_viewer_of_one_tenant_add_there_through_another(client, tenant, other_tenant):
    user = grant(staff(tenant, Role.PRACTITIONER), other_tenant, Role.VIEWER)
    theirs = AccountFactory(tenant=other_tenant)
    client.force_login(user)

    response = client.post(url("contact", "add"), {"account": theirs.pk, "name": "Sneaky"})

    assert response.status_code == 200
    assert "account" in form_errors(response)
    assert not Contact.objects.filter(name="Sneaky").exists()


def test_it_rejects_relations_across_the_users_tenants(client, tenant, other_tenant):
    user = grant(staff(tenant), other_tenant)
    mine = AccountFactory(tenant=tenant)
    their_contact = ContactFactory(account=AccountFactory(tenant=other_tenant))
    client.force_login(user)

    now = split_now()
    response = client.post(url("surveyresponse", "add"), {
        "account": mine.pk, "contact": their_contact.pk, "kind": "nps", "score": 9, "comment": "",
        "responded_at_0": now["0"], "responded_at_1": now["1"],
    })

    assert response.status_code == 200
    assert "contact" in form_errors(response)
    assert not SurveyResponse.objects.exists()


def test_it_rejects_a_duplicate_tag_name_in_the_tenant(client, tenant, other_tenant):
    TagFactory(tenant=tenant, name="vip")
    client.force_login(staff(tenant))

    duplicate = client.post(url("tag", "add"), {"name": "vip", "color": ""})
    assert duplicate.status_code == 200
    assert "name" in form_errors(duplicate)

    TagFactory(tenant=other_tenant, name="strategic")
    created = client.post(url("tag", "add"), {"name": "strategic", "color": ""})
    assert created.status_code == 302, form_errors(created)
    assert Tag.objects.for_tenant(tenant).filter(name="strategic").exists()


# --- the account page ----------------------------------------------------------------------------

@pytest.fixture
def demo_like_account(tenant):
    parent = AccountFactory(tenant=tenant, name="GlobalTech Corporation")
    account = AccountFactory(tenant=tenant, name="GlobalTech Europe", parent=parent)
    start = timezone.now() - datetime.timedelta(days=30)
    for day in range(12):
        services.health_score_record(
            account=account, calculated_at=start + datetime.timedelta(days=day),
            components={"usage_score": 60 + day, "engagement_score": 70, "support_sentiment_score": None,
                        "adoption_score": 65},
        )
    ContactFactory.create_batch(2, account=account)
    OpportunityFactory(account=account, name="FY27 renewal")
    TaskFactory(account=account, title="Plan QBR")
    TaskFactory(account=account, title="Old task", status=Task.Status.DONE)
    NoteFactory.create_batch(2, account=account)
    stages = {s.name: s for s in JourneyStage.objects.for_tenant(tenant)}
    services.journey_move_to_stage(account=account, stage=stages["Onboarding"], at=start)
    services.journey_move_to_stage(account=account, stage=stages["Adoption"])
    return account


def test_it_renders_the_account_page_with_its_inlines(client, tenant, demo_like_account):
    client.force_login(staff(tenant))

    response = client.get(url("account", "change", demo_like_account.pk))

    assert response.status_code == 200
    rows = {
        inline.formset.model: len(inline.formset.initial_forms) for inline in response.context["inline_admin_formsets"]
    }
    assert rows == {Contact: 2, Opportunity: 1, HealthScore: 10, Task: 1, Note: 2, JourneyHistory: 2, PlaybookExecution: 0}
    content = response.content.decode()
    assert "Plan QBR" in content and "Old task" not in content
    assert "Usage 71.0 x" in content  # the latest score's breakdown


def test_it_lists_accounts_with_health_risk_and_stage(client, tenant, demo_like_account):
    client.force_login(staff(tenant))

    response = client.get(url("account", "changelist"), {"risk_level": demo_like_account.risk_level})

    assert response.status_code == 200
    assert changelist_names(response) == {"GlobalTech Europe"}
    content = response.content.decode()
    assert "Adoption" in content and str(demo_like_account.health_score) in content
    assert client.get(url("account", "changelist"), {"q": "globaltech"}).status_code == 200


def test_it_adds_inline_rows_in_the_accounts_tenant(client, tenant, other_tenant):
    account = AccountFactory(tenant=tenant, name="Mine")
    user = grant(staff(tenant), other_tenant)  # two tenants: the rows' tenant must come from the account
    client.force_login(user)
    address = url("account", "change", account.pk)
    data = {**management_data(client.get(address)), **account_data(name="Mine")}
    data.update({
        "contacts-TOTAL_FORMS": "1", "contacts-0-name": "Dana Champion", "contacts-0-email": "dana@mine.test",
        "notes-TOTAL_FORMS": "1", "notes-0-body": "Kick-off done.",
        "tasks-TOTAL_FORMS": "1", "tasks-0-title": "Send recap", "tasks-0-priority": "medium", "tasks-0-status": "open",
    })

    response = client.post(address, data)

    assert response.status_code == 302, response.context and response.context["inline_admin_formsets"]
    assert Contact.objects.get(name="Dana Champion").tenant == tenant
    note = Note.objects.get(body="Kick-off done.")
    assert (note.tenant, note.author) == (tenant, user)
    task = Task.objects.get(title="Send recap")
    assert (task.tenant, task.created_by) == (tenant, user)


def test_it_adds_an_account_with_a_contact_in_one_go(client, tenant):
    client.force_login(staff(tenant))
    address = url("account", "add")
    data = {**management_data(client.get(address)), **account_data(name="Fresh Co")}
    data.update({"contacts-TOTAL_FORMS": "1", "contacts-0-name": "First Contact"})

    response = client.post(address, data)

    assert response.status_code == 302, form_errors(response)
    contact = Contact.objects.get(name="First Contact")
    assert contact.account.name == "Fresh Co" and contact.tenant == tenant


def test_it_rejects_a_parent_that_is_below_the_account(client, tenant):
    top = AccountFactory(tenant=tenant, name="Top")
    child = AccountFactory(tenant=tenant, name="Child", parent=top)
    client.force_login(staff(tenant))

    response = post_form(client, url("account", "change", top.pk), account_data(name="Top", parent=child.pk))

    assert response.status_code == 200
    assert "ancestor" in str(form_errors(response)["parent"])
    top.refresh_from_db()
    assert top.parent is None


def test_it_moves_accounts_to_a_stage_with_the_action(client, tenant):
    account = AccountFactory(tenant=tenant)
    user = staff(tenant)
    client.force_login(user)

    page = client.get(url("account", "changelist"))
    action = next(key for key, label in page.context["action_form"].fields["action"].choices
                  if label == "Move to stage: Adoption")
    response = client.post(url("account", "changelist"), {
        "action": action, "index": 0, "_selected_action": [account.pk],
    })

    assert response.status_code == 302
    account.refresh_from_db()
    assert account.current_stage.name == "Adoption"
    assert JourneyHistory.objects.get(account=account).moved_by == user


def test_it_deletes_an_account_with_its_history(client, tenant, demo_like_account):
    client.force_login(staff(tenant))

    response = client.post(url("account", "delete", demo_like_account.pk), {"post": "yes"})

    assert response.status_code == 302
    assert not Account.objects.filter(pk=demo_like_account.pk).exists()
    assert not HealthScore.objects.filter(account_id=demo_like_account.pk).exists()


# --- health scores -------------------------------------------------------------------------------

def test_it_records_a_health_score_through_the_service(client, tenant):
    account = AccountFactory(tenant=tenant)
    services.health_score_record(  # 70 overall, an hour ago: becomes the previous score
        account=account, calculated_at=timezone.now() - datetime.timedelta(hours=1),
        components={"usage_score": 70, "engagement_score": 70, "support_sentiment_score": 70, "adoption_score": 70},
    )
    client.force_login(staff(tenant))
    now = split_now()

    response = client.post(url("healthscore", "add"), {
        "account": account.pk, "usage_score": "30", "engagement_score": "35", "support_sentiment_score": "40",
        "adoption_score": "35", "calculated_at_0": now["0"], "calculated_at_1": now["1"],
    })

    assert response.status_code == 302, form_errors(response)
    score = HealthScore.objects.filter(account=account).latest()
    assert (score.overall_score, score.previous_score, score.risk_level) == (Decimal("34.25"), Decimal("70"), "critical")
    account.refresh_from_db()
    assert account.health_score == Decimal("34.25")

    page = client.get(url("healthscore", "change", score.pk))
    assert page.status_code == 200 and page.context["has_change_permission"] is False
    assert "Contribution" in page.content.decode() and "Support sentiment" in page.content.decode()
    assert client.post(url("healthscore", "change", score.pk), {"usage_score": "99"}).status_code == 403


def test_it_rejects_a_health_score_without_components(client, tenant):
    account = AccountFactory(tenant=tenant)
    client.force_login(staff(tenant))
    now = split_now()

    response = client.post(url("healthscore", "add"), {
        "account": account.pk, "calculated_at_0": now["0"], "calculated_at_1": now["1"],
    })

    assert response.status_code == 200
    assert form_errors(response)
    assert not HealthScore.objects.exists()


# --- tenant settings and memberships -------------------------------------------------------------

def test_it_lets_a_tenant_admin_change_only_their_tenants_settings(client, tenant, other_tenant):
    client.force_login(staff(tenant, Role.TENANT_ADMIN))

    listed = client.get(url("tenant", "changelist"))
    assert changelist_names(listed) == {tenant.name}
    assert client.get(url("tenant", "change", other_tenant.pk)).status_code in (302, 404)
    assert client.get(url("tenant", "add")).status_code == 403

    settings = {"weight_usage": "40", "weight_engagement": "20", "weight_support": "20", "weight_adoption": "20",
                "band_healthy": "75", "band_moderate": "55", "band_at_risk": "35", "name": "Renamed"}
    response = client.post(url("tenant", "change", tenant.pk), settings)
    assert response.status_code == 302, form_errors(response)
    tenant.refresh_from_db()
    assert (tenant.weight_usage, tenant.band_healthy) == (Decimal("40"), Decimal("75"))
    assert tenant.name != "Renamed"  # name and slug are the superuser's

    bad = client.post(url("tenant", "change", tenant.pk), {**settings, "band_healthy": "50"})
    assert bad.status_code == 200
    assert "band_healthy" in form_errors(bad)


def test_it_creates_a_tenant_with_its_stages_for_a_superuser(client):
    client.force_login(UserFactory(is_staff=True, is_superuser=True))

    response = client.post(url("tenant", "add"), {
        "name": "Globex", "slug": "globex", "timezone": "UTC", "weight_usage": "35", "weight_engagement": "25",
        "weight_support": "20", "weight_adoption": "20", "band_healthy": "80", "band_moderate": "60",
        "band_at_risk": "40",
    })

    assert response.status_code == 302, form_errors(response)
    assert JourneyStage.objects.filter(tenant__slug="globex").count() == 7


def test_it_lets_a_tenant_admin_grant_memberships_by_email(client, tenant, other_tenant):
    outsider = staff(other_tenant, email="known@b.test", username="known@b.test")
    client.force_login(staff(tenant, Role.TENANT_ADMIN))

    new = client.post(url("membership", "add"), {
        "tenant": tenant.pk, "email": "new@a.test", "first_name": "Nia", "last_name": "New",
        "password": "a-Long-pass-phrase-42", "role": Role.VIEWER,
    })
    assert new.status_code == 302, form_errors(new)
    user = get_user_model().objects.get(email="new@a.test")
    assert user.is_staff and user.check_password("a-Long-pass-phrase-42")
    assert Membership.objects.get(user=user).role == Role.VIEWER

    existing = client.post(url("membership", "add"), {
        "tenant": tenant.pk, "email": "known@b.test", "first_name": "Taken", "last_name": "Over",
        "password": "another-Long-pass-42", "role": Role.CONTRIBUTOR,
    })
    assert existing.status_code == 302, form_errors(existing)
    outsider.refresh_from_db()
    assert outsider.first_name != "Taken" and not outsider.check_password("another-Long-pass-42")
    assert Membership.objects.get(user=outsider, tenant=tenant).role == Role.CONTRIBUTOR

    listed = client.get(url("membership", "changelist"))
    assert {m.tenant for m in listed.context["cl"].result_list} == {tenant}
    other = client.post(url("membership", "add"), {"tenant": other_tenant.pk, "email": "x@b.test", "role": "viewer"})
    assert other.status_code == 200 and "tenant" in form_errors(other)


# --- every page ----------------------------------------------------------------------------------

def test_it_renders_every_admin_page_for_the_demo_tenant_admin(client):
    from accounts.demo import DEMO_ADMIN, demo_seed

    tenant = demo_seed()
    client.force_login(get_user_model().objects.get(email=DEMO_ADMIN[0]))
    other = AccountFactory(tenant=TenantFactory(), name="Other tenant's account")

    for model, model_admin in django_admin.site._registry.items():
        if model._meta.app_label != "accounts":
            continue
        name = model._meta.model_name
        listed = client.get(url(name, "changelist"))
        assert listed.status_code == 200, name
        assert other.name.encode() not in listed.content
        if model_admin.has_add_permission(listed.wsgi_request):
            assert client.get(url(name, "add")).status_code == 200, name
        first = model_admin.get_queryset(listed.wsgi_request).first()
        if first is not None:
            assert client.get(url(name, "change", first.pk)).status_code == 200, name
    assert client.get(url("tenant", "change", tenant.pk)).status_code == 200

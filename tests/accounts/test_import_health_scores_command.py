"""``import_health_scores --tenant T FILE|-``: the nightly import from a CSV file."""

import io

import pytest
from django.core.management import CommandError, call_command

from accounts.models import HealthScore
from csplatform.tenancy import tenant_context
from tests.factories import AccountFactory

pytestmark = pytest.mark.django_db

HEADER = "account,usage_score,engagement_score,support_sentiment_score,adoption_score\n"


def run(*args, stdin: str | None = None) -> tuple[str, str]:
    """The command as from a shell (no tenant scope open): its output and its error output."""
    out, err = io.StringIO(), io.StringIO()
    with tenant_context(None):
        call_command("import_health_scores", *args, stdout=out, stderr=err,
                     **({"stdin": io.StringIO(stdin)} if stdin is not None else {}))
    return out.getvalue(), err.getvalue()


def scores_of(tenant, account) -> list[tuple[str, str]]:
    with tenant_context(tenant):
        return [(str(s.overall_score), s.risk_level) for s in HealthScore.objects.filter(account=account)]


def test_it_records_the_scores_of_a_csv_file(tenant, tmp_path):
    first, second = AccountFactory(tenant=tenant), AccountFactory(tenant=tenant)
    path = tmp_path / "scores.csv"
    path.write_text(HEADER + f"{first.pk},30,50,40,20\n{second.pk},90,,,\n", encoding="utf-8-sig")

    out, err = run(str(path), "--tenant", tenant.slug)

    assert out.splitlines() == ["recorded: 2", "rejected: 0"]
    assert scores_of(tenant, first) == [("35.00", "critical")]
    assert scores_of(tenant, second) == [("90.00", "healthy")]  # the missing components are left out


def test_it_reads_standard_input_and_takes_the_tenant_by_id(tenant):
    account = AccountFactory(tenant=tenant)

    out, _ = run("-", "--tenant", str(tenant.pk), stdin=f"account_id,usage_score\n{account.pk},55\n")

    assert out.splitlines()[0] == "recorded: 1"
    assert scores_of(tenant, account) == [("55.00", "at_risk")]


def test_it_reports_bad_lines_by_number_and_records_the_others(tenant, other_tenant):
    good, foreign = AccountFactory(tenant=tenant), AccountFactory(tenant=other_tenant)
    rows = f"{good.pk},30,50,40,20\n{foreign.pk},30,50,40,20\nnot-an-id,1,1,1,1\n"

    with pytest.raises(CommandError, match=r"3 row\(s\) were not recorded"):
        run("-", "--tenant", tenant.slug, stdin=HEADER + rows + f"{good.pk},130,,,\n")

    assert scores_of(tenant, good) == [("35.00", "critical")]
    assert scores_of(other_tenant, foreign) == []


def test_the_error_output_names_the_line_and_the_field(tenant):
    account = AccountFactory(tenant=tenant)
    out, err = io.StringIO(), io.StringIO()

    with tenant_context(None), pytest.raises(CommandError):
        call_command("import_health_scores", "-", "--tenant", tenant.slug, stdout=out, stderr=err,
                     stdin=io.StringIO(f"account,usage_score\n{str(account.pk).upper()},abc\n"))

    assert err.getvalue().strip() == (
        f"line 2 (account {account.pk}): usage_score: A component score must be a number between 0 and 100.")
    assert out.getvalue().splitlines() == ["recorded: 0", "rejected: 1"]


@pytest.mark.parametrize("header, message", [
    ("name,usage_score", "needs one account column"),
    ("account,overall_score", "overall_score is computed from the components"),
    ("account,usage_score,nps", "Unknown column"),
    ("account", "names no component"),
])
def test_it_refuses_a_header_it_cannot_read(tenant, header, message):
    with pytest.raises(CommandError, match=message):
        run("-", "--tenant", tenant.slug, stdin=header + "\n")


def test_it_names_an_unknown_tenant_and_a_future_time(tenant):
    with pytest.raises(CommandError, match="No tenant 'nope'"):
        run("-", "--tenant", "nope", stdin=HEADER)
    with pytest.raises(CommandError, match="cannot be dated in the future"):
        run("-", "--tenant", tenant.slug, "--at", "2999-01-01T00:00:00Z", stdin=HEADER)
    with pytest.raises(CommandError, match="not an ISO 8601"):
        run("-", "--tenant", tenant.slug, "--at", "yesterday", stdin=HEADER)

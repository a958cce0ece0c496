from tests.factories import AccountFactory


def test_it_lists_only_own_accounts(api, tenant, other_tenant):
    AccountFactory(tenant=tenant, name="Mine")
    AccountFactory(tenant=other_tenant, name="Theirs")
    response = api.get("/api/accounts/")
    assert response.status_code == 200, response.content
    assert [a["name"] for a in response.json()["results"]] == ["Mine"]


def test_it_records_health_score(api, tenant):
    account = AccountFactory(tenant=tenant)
    r = api.post("/api/health-scores/", {"account": str(account.pk), "usage_score": 30, "engagement_score": 35,
                                          "support_sentiment_score": 40, "adoption_score": 35})
    assert r.status_code == 201, r.content
    assert r.json()["overall_score"] == "34.25"
    assert r.json()["risk_level"] == "critical"

"""docs/prometheus-alerts.yml and docs/grafana-dashboard.json: well formed, naming only metrics /metrics serves, and
(with promtool installed) valid rules whose unit tests pass."""

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from django.test import Client
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "docs" / "prometheus-alerts.yml"
DASHBOARD = ROOT / "docs" / "grafana-dashboard.json"
METRIC = re.compile(r"\b((?:automation|delivery|crm|celery|scheduler)_[a-z_]+)\b")


@pytest.fixture
def served(db, settings) -> set[str]:
    """Every family and sample name of a scrape (with a Redis broker, so celery's are there too)."""
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:6379/11"
    body = Client().get("/metrics").content.decode()
    names = set(re.findall(r"^# TYPE (\S+)", body, re.MULTILINE))
    for family in text_string_to_metric_families(body):
        names |= {family.name, *(s.name for s in family.samples)}
    histograms = {n for n in names if re.search(rf"^# TYPE {n} histogram", body, re.MULTILINE)}
    return names | {f"{n}_{suffix}" for n in histograms for suffix in ("bucket", "gsum", "gcount", "sum", "count")}


def rules() -> list[dict]:
    return [rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]]


def test_every_alert_has_an_expression_a_severity_and_a_summary():
    assert len(rules()) >= 8
    for rule in rules():
        assert rule["alert"].startswith("CSPlatform") and rule["expr"].strip()
        assert rule["labels"]["severity"] in ("warning", "critical")
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]


def test_the_alerts_cover_backlog_age_dead_messages_and_a_silent_beat():
    exprs = " ".join(rule["expr"] for rule in rules())
    for metric in ("automation_event_oldest_pending_age_seconds", "delivery_outbox_oldest_due_age_seconds",
                   "delivery_outbox_dead", "scheduler_heartbeat_age_seconds"):
        assert metric in exprs


def test_the_alerts_and_the_dashboard_name_only_metrics_that_are_served(served):
    exprs = [rule["expr"] for rule in rules()]
    dashboard = json.loads(DASHBOARD.read_text())
    exprs += [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]
    named = {name for expr in exprs for name in METRIC.findall(expr)}
    assert named and named - served == set()


def test_the_dashboard_is_importable():
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] and dashboard["title"] and dashboard["schemaVersion"] >= 36
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        assert {"x", "y", "w", "h"} <= set(panel["gridPos"])


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed (apt-get install prometheus)")
def test_promtool_accepts_the_rules_and_their_unit_tests_pass():
    for args in (["check", "rules", str(RULES)], ["test", "rules", str(Path(__file__).with_name("alerts_test.yml"))]):
        done = subprocess.run(["promtool", *args], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stdout + done.stderr

"""compose.yml runs the topology as the restricted runtime role and only ``migrate`` as the tables' owner, and the
database's first start creates both roles, neither able to bypass row-level security (docs/operations.md)."""

import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
RUNTIME_SERVICES = ("web", "worker", "worker-bulk", "beat")


@pytest.fixture(scope="module")
def compose():
    return yaml.safe_load((ROOT / "compose.yml").read_text())["services"]


def database_user(service: dict) -> str:
    """The user of a DATABASE_URL whose password is a ``${VAR:?message}`` compose interpolation."""
    return re.match(r"postgres://([^:@/]+)[:@]", service["environment"]["DATABASE_URL"]).group(1)


def test_web_workers_and_beat_connect_as_the_runtime_role_and_migrate_as_the_owner(compose):
    assert database_user(compose["migrate"]) == "csplatform"
    for name in RUNTIME_SERVICES:
        assert database_user(compose[name]) == "csplatform_app", name
        assert compose[name]["environment"]["DATABASE_APP_ROLE"] == "csplatform_app", name
    # migrate grants the runtime role its rights after each run (csplatform/rls.py grant_app_role)
    assert compose["migrate"]["environment"]["DATABASE_APP_ROLE"] == "csplatform_app"


def test_the_first_start_creates_both_roles_without_superuser_or_rls_bypass(compose):
    init = (ROOT / "deploy/postgres/10-app-role.sh").read_text()
    creates = [line for line in init.splitlines() if line.startswith("CREATE ROLE")]
    assert len(creates) == 2 and all("NOSUPERUSER NOBYPASSRLS" in line for line in creates)
    assert 'CREATE DATABASE :"role" OWNER :"role"' in init  # the owner, not the runtime role, owns it
    assert {"APP_DB_PASSWORD", "RUNTIME_DB_PASSWORD"} <= set(compose["postgres"]["environment"])
    example = (ROOT / "deploy/compose.env.example").read_text().splitlines()
    assert "RUNTIME_DB_PASSWORD=" in example and "APP_DB_PASSWORD=" in example

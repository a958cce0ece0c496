"""What every playbook evaluator shares: its settings (validated, with defaults) and the set-based run.

An evaluator is a list of settings and a list of checks. ``build`` adds the signal sources it needs
to an ``AccountSignals`` query (``playbooks.selectors``); each check has a condition (an SQL
template over those signals, with its threshold as a parameter), the same test in Python for a
fetched row, and the sentences a CSM reads: why it fired for an account, or that the account has
no data for it. The conditions are combined in the database (any check, or the evaluator's own
combination), so only the affected accounts come back to Python, and the number of queries does
not depend on the number of accounts.
"""

from __future__ import annotations

import math
import operator
import re
import time
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from collections.abc import Sequence
from typing import Any, Callable

from django.utils import timezone

from .. import selectors


class SettingsError(ValueError):
    """Invalid trigger settings: ``errors`` maps each offending key to its messages."""

    def __init__(self, errors: dict[str, list[str]]):
        self.errors = errors
        super().__init__("; ".join(f"{key}: {' '.join(messages)}" for key, messages in errors.items()))


WORD = re.compile(r"^[^\W_][\w '\-]{0,48}$")


@dataclass(frozen=True)
class Setting:
    """One key of a trigger config. ``nullable`` thresholds may be set to null to switch the check off."""

    key: str
    kind: str  # number | integer | boolean | names
    default: Any
    minimum: float | None = None
    maximum: float | None = None
    nullable: bool = False
    help: str = ""

    def clean(self, value):
        if value is None:
            if self.nullable:
                return None
            raise ValueError("may not be null")
        if self.kind == "boolean":
            if not isinstance(value, bool):
                raise ValueError("must be true or false")
            return value
        if self.kind in ("number", "integer"):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError("must be a number")
            if self.kind == "integer":
                if value != int(value):
                    raise ValueError("must be a whole number")
                value = int(value)
            if self.minimum is not None and value < self.minimum or self.maximum is not None and value > self.maximum:
                raise ValueError(f"must be between {_num(self.minimum)} and {_num(self.maximum)}")
            return value
        if self.kind == "names":
            if isinstance(value, str):
                value = [part for part in value.split(",")]
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ValueError("must be a list of names or a comma-separated string")
            names = []
            for raw in value:
                name = " ".join(raw.split())
                if not name:
                    continue
                if not WORD.match(name):
                    raise ValueError(f"'{raw}' is not a valid name (letters, digits, spaces, - and ' only, "
                                     "at most 49 characters)")
                if name.lower() not in {n.lower() for n in names}:
                    names.append(name)
            if self.minimum is not None and len(names) < self.minimum:
                raise ValueError(f"needs at least {int(self.minimum)} entr{'y' if self.minimum == 1 else 'ies'}")
            if self.maximum is not None and len(names) > self.maximum:
                raise ValueError(f"may have at most {int(self.maximum)} entries")
            return names
        raise AssertionError(self.kind)

    def describe(self) -> dict:
        spec = {"type": self.kind, "default": self.default, "nullable": self.nullable, "help": self.help}
        if self.minimum is not None:
            spec["minimum"] = self.minimum
        if self.maximum is not None:
            spec["maximum"] = self.maximum
        return spec

    def json_schema(self) -> dict:
        """The setting as JSON schema (the admin's form is made from it); ``*_days`` / ``*_hours`` are durations."""
        if self.kind == "names":
            schema = {"type": "array", "items": {"type": "string"}, "minItems": self.minimum, "maxItems": self.maximum}
        else:
            kind = {"boolean": "boolean", "integer": "integer"}.get(self.kind, "number")
            schema = {"type": kind, "minimum": self.minimum, "maximum": self.maximum}
            unit = self.key.rsplit("_", 1)[-1]
            if unit in ("days", "hours"):
                schema["x-duration"] = unit
        if self.nullable:
            schema["type"] = [schema["type"], "null"]
        schema.update(default=self.default, description=self.help)
        return {key: value for key, value in schema.items() if value is not None}


def _num(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def fmt(value, digits: int = 1, *, fixed: bool = False) -> str:
    """A number as a CSM reads it: 35.0 -> "35", 30.15 -> "30.2", 0.054 -> "0.05" (digits=2); with
    ``fixed`` the decimals stay (0.3 -> "0.30")."""
    if value is None:
        return "n/a"
    value = float(value)
    # Half away from zero as people round (30.15 -> 30.2), not binary floating point's 30.1.
    text = f"{value + (5e-10 if value >= 0 else -5e-10):.{digits}f}"
    if text.startswith("-") and float(text) == 0:
        text = text[1:]
    if fixed:
        return text
    return text.rstrip("0").rstrip(".") if "." in text else text


def plural(count: int, singular: str, many: str | None = None) -> str:
    return f"{count} {singular if count == 1 else (many or singular + 's')}"


@dataclass
class Context:
    tenant: Any
    config: dict
    now: datetime
    today: date
    cache: dict = field(default_factory=dict)

    def since(self, days: int) -> datetime:
        return self.now - timedelta(days=days)

    def since_date(self, days: int) -> date:
        """The first day of a window of ``days`` days ending today."""
        return self.today - timedelta(days=days - 1)


@dataclass
class Check:
    """One signal of an evaluator.

    ``setting`` names the threshold; the check is off when the threshold is null (or, for boolean
    switches, false). ``condition(ctx)`` is what an account must meet, ``(sql template, params)``;
    ``fired(row, ctx)`` the same test on a fetched row; ``reason`` and ``missing`` the sentences for
    the account's ``triggers``.
    """

    name: str
    setting: str
    condition: Callable[[Context], tuple[str, list]]
    fired: Callable[[dict, Context], bool]
    reason: Callable[[dict, Context], str]
    missing: Callable[[dict, Context], str | None] = lambda row, ctx: None
    columns: tuple[str, ...] = ()  # annotated values the reasons need

    def active(self, ctx: Context) -> bool:
        value = ctx.config.get(self.setting)
        return value is not None and value is not False


COMPARE = {"<": operator.lt, "<=": operator.le, ">=": operator.ge, ">": operator.gt}


def threshold(column: str, op: str, setting: str, sign: int = 1) -> dict:
    """``condition`` and ``fired`` of a Check testing ``column op (sign x the setting)``, made from one spec so the
    SQL and the in-memory test cannot disagree; a null value never fires (as in SQL)."""
    test = COMPARE[op]
    return {"condition": lambda ctx: (f"{{{column}}} {op} %s", [sign * ctx.config[setting]]),
            "fired": lambda row, ctx: row[column] is not None and test(row[column], sign * ctx.config[setting])}


class Evaluator:
    type: str = ""
    play: str = ""  # the play's name in messages: "VoC Sprint"
    settings: tuple[Setting, ...] = ()

    # --- settings ------------------------------------------------------------------------------

    def defaults(self) -> dict:
        return {s.key: (list(s.default) if isinstance(s.default, list) else s.default) for s in self.settings}

    def config_schema(self) -> dict:
        """The JSON schema of the trigger config (every setting; unknown keys are refused)."""
        return {"type": "object", "title": self.play, "additionalProperties": False,
                "properties": {s.key: s.json_schema() for s in self.settings}}

    def validate(self, changes: Any, base: dict | None = None) -> dict:
        """``base`` (the saved config, else the defaults) updated with ``changes``; raises SettingsError
        naming every unknown key and every invalid value."""
        if not isinstance(changes, dict):
            raise SettingsError({"triggers": ["must be an object of settings"]})
        known = {s.key: s for s in self.settings}
        errors: dict[str, list[str]] = {}
        cleaned = {}
        for key, value in changes.items():
            setting = known.get(key)
            if setting is None:
                errors[key] = [f"unknown setting for {self.type}; known settings: {', '.join(known)}"]
                continue
            try:
                cleaned[key] = setting.clean(value)
            except ValueError as exc:
                errors[key] = [str(exc)]
        if errors:
            raise SettingsError(errors)
        merged = self.defaults()
        for key, value in (base or {}).items():
            if key in known:
                try:
                    merged[key] = known[key].clean(value)
                except ValueError:
                    pass  # a stored value that no longer validates falls back to the default
        merged.update(cleaned)
        self.validate_together(merged)
        return merged

    def validate_together(self, config: dict) -> None:
        """Rules between settings; raise SettingsError."""

    # --- evaluation ----------------------------------------------------------------------------

    def checks(self, ctx: Context) -> list[Check]:
        raise NotImplementedError

    def build(self, signals: selectors.AccountSignals, ctx: Context) -> None:
        """Add the sources and derived signals the checks refer to."""
        raise NotImplementedError

    def columns(self, ctx: Context, checks: list[Check]) -> list[str]:
        """Annotated values fetched for affected accounts: what the active checks' reasons need."""
        found: list[str] = []
        for check in checks:
            found.extend(c for c in check.columns if c not in found)
        return found

    def condition(self, ctx: Context, checks: list[Check]) -> tuple[str, list] | None:
        """Accounts affected: by default those meeting any active check."""
        return any_of([check.condition(ctx) for check in checks])

    def prepare(self, ctx: Context) -> None:
        """Reads the evaluator needs before the account query (a constant number of queries)."""

    def account_reasons(self, row: dict, ctx: Context, checks: list[Check], fired: list[Check]) -> list[str]:
        """The reasons of the checks that ``fired``, then what the account has no data for."""
        reasons = [check.reason(row, ctx) for check in fired]
        missing = []
        for check in checks:
            text = check.missing(row, ctx)
            if text and text not in missing:
                missing.append(text)
        return reasons + missing

    def metrics(self, row: dict, ctx: Context, columns: list[str]) -> dict:
        return {key: _json_number(row.get(key)) for key in columns}

    def evaluate(self, tenant, config: dict, *, now: datetime | None = None,
                 store: selectors.SignalStore | None = None) -> dict:
        """Seed 000's result: ``triggered``, ``message``, ``details``, ``affected_accounts``. ``store`` shares
        the signal families' queries with the other evaluators of an evaluate-all run."""
        started = time.monotonic()
        now = now or timezone.now()
        ctx = Context(tenant=tenant, config=config, now=now, today=timezone.localdate(now))
        self.prepare(ctx)
        checks = [check for check in self.checks(ctx) if check.active(ctx)]
        condition = self.condition(ctx, checks)
        rows: list[dict] = []
        columns = self.columns(ctx, checks)
        if condition is not None:
            signals = selectors.AccountSignals(tenant, store=store)
            self.build(signals, ctx)
            sql, params = condition
            rows = signals.rows(sql, [selectors.sql_value(p) for p in params], columns)
        fired_by: dict[str, int] = {}
        for check in checks:
            fired_by[check.name] = sum(1 for row in rows if check.fired(row, ctx))
        affected = AffectedAccounts(rows, lambda row: self.account(row, ctx, checks, columns))
        evaluated = store.evaluated_count(tenant) if store else selectors.evaluated_accounts(tenant).count()
        triggered = bool(affected)
        message = (f"{self.play} triggered for {len(affected)} account(s)" if triggered
                   else f"No accounts meet {self.play} trigger conditions")
        details = {
            **config,
            "summary": {
                "accounts_evaluated": evaluated,
                "accounts_affected": len(affected),
                "checks_active": [check.name for check in checks],
                "accounts_by_check": fired_by,
                **self.summary(ctx, rows),
                "duration_ms": int((time.monotonic() - started) * 1000),
            },
        }
        return {"triggered": triggered, "message": message, "details": details, "affected_accounts": affected}

    def account(self, row: dict, ctx: Context, checks: list[Check], columns: list[str]) -> dict:
        """One affected account as seed 000 shows it: who, why (the reasons a CSM reads) and the signal values."""
        fired = [check for check in checks if check.fired(row, ctx)]
        return {
            "account_id": str(row["id"]),
            "account_name": row["name"],
            "health_score": float(row["health_score"]) if row["health_score"] is not None else None,
            "triggers": self.account_reasons(row, ctx, checks, fired),
            "metrics": self.metrics(row, ctx, columns),
        }

    def summary(self, ctx: Context, rows: list[dict]) -> dict:
        return {}


class AffectedAccounts(Sequence):
    """The affected accounts of an evaluation, worst health first. Each one's reasons and metrics are written
    when it is first read: evaluate-all reads only the accounts it starts an execution for, so a scheduled run
    over 100,000 accounts does not phrase reasons nobody reads; the API reads (and shows) them all."""

    def __init__(self, rows: list[dict], build: Callable[[dict], dict]):
        self.rows = rows
        self._build = build
        self._built: dict[int, dict] = {}

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self.rows)))]
        index = range(len(self.rows))[index]  # negative indexes, IndexError
        if index not in self._built:
            self._built[index] = self._build(self.rows[index])
        return self._built[index]

    def __eq__(self, other) -> bool:
        if isinstance(other, (list, tuple, AffectedAccounts)):
            return list(self) == list(other)
        return NotImplemented

    def __repr__(self) -> str:
        return repr(list(self))

    def tolist(self) -> list[dict]:
        """Every account, built (DRF's JSON encoder calls this)."""
        return list(self)


def any_of(conditions: list[tuple[str, list]]) -> tuple[str, list] | None:
    if not conditions:
        return None
    return " OR ".join(f"({sql})" for sql, _ in conditions), [p for _, params in conditions for p in params]


def all_of(conditions: list[tuple[str, list]]) -> tuple[str, list] | None:
    if not conditions:
        return None
    return " AND ".join(f"({sql})" for sql, _ in conditions), [p for _, params in conditions for p in params]


def _json_number(value):
    kind = type(value)
    if kind is float:
        return round(value, 4)
    if kind in (date, datetime):
        return value.isoformat()
    return value

"""A/B results of an email template (seed 001's "A/B test results"): per variant, what was sent, delivered,
opened, clicked and converted, and whether a variant beats the control by more than chance.

* ``opened`` / ``clicked``: messages with at least one open / click (``EmailEvent``), not events.
* ``converted``: messages that led to a conversion, as the apps that know about conversions say
  (``register_conversions``; the CRM counts an email step whose journey execution converted).
* **Significance**: a two-proportion z-test of each variant against the control (the first configured
  variant), on the conversion rate when there are conversions, else the click rate, over sent messages.
  ``p_value`` is two-sided; ``significant`` means p < 0.05 with at least 30 messages on each side.
"""

from __future__ import annotations

import math
from typing import Callable

from django.db.models import Count, Exists, OuterRef, Q

from .email import email_variant_report
from .models import EmailEvent, EmailTemplate, Outbox

MIN_SAMPLE = 30
ALPHA = 0.05
_conversions: list[Callable] = []


def register_conversions(fn: Callable) -> Callable:
    """``fn(tenant_id, message_ids: list[str]) -> set[str]``: which of these outbox messages converted."""
    _conversions.append(fn)
    return fn


def two_proportion_test(hits_a: int, n_a: int, hits_b: int, n_b: int) -> tuple[float, float] | None:
    """(z, two-sided p) of B's rate against A's, or None when it cannot be computed."""
    if not n_a or not n_b:
        return None
    pooled = (hits_a + hits_b) / (n_a + n_b)
    spread = math.sqrt(pooled * (1 - pooled) * (1 / n_a + 1 / n_b))
    if spread == 0:
        return None
    z = (hits_b / n_b - hits_a / n_a) / spread
    return round(z, 4), round(math.erfc(abs(z) / math.sqrt(2)), 6)


def variant_results(template: EmailTemplate, *, since=None, until=None) -> list[dict]:
    rows = email_variant_report(template, since=since, until=until)
    messages = Outbox.objects.for_tenant(template.tenant_id).filter(email_template=template,
                                                                     channel=Outbox.Channel.EMAIL)
    if since is not None:
        messages = messages.filter(created_at__gte=since)
    if until is not None:
        messages = messages.filter(created_at__lt=until)
    events = EmailEvent.objects.for_tenant(template.tenant_id).filter(message=OuterRef("pk"))
    engaged = {row["variant"]: row for row in messages.values("variant").annotate(
        opened=Count("pk", filter=Q(Exists(events.filter(kind=EmailEvent.Kind.OPEN)))),
        clicked=Count("pk", filter=Q(Exists(events.filter(kind=EmailEvent.Kind.CLICK))))).order_by()}
    converted_ids = set()
    if _conversions:
        ids = list(messages.values_list("message_id", flat=True))
        for fn in _conversions:
            converted_ids |= set(fn(template.tenant_id, ids))
    converted = dict(messages.filter(message_id__in=converted_ids).values("variant").annotate(n=Count("pk"))
                     .values_list("variant", "n").order_by()) if converted_ids else {}
    for row in rows:
        sent = row["sent"]
        row["opened"] = engaged.get(row["variant"], {}).get("opened", 0)
        row["clicked"] = engaged.get(row["variant"], {}).get("clicked", 0)
        row["converted"] = converted.get(row["variant"], 0)
        for name in ("opened", "clicked", "converted"):
            row[f"{name}_rate"] = round(row[name] / sent, 4) if sent else None
    _significance(rows)
    return rows


def _significance(rows: list[dict]) -> None:
    configured = [row for row in rows if row["configured"]]
    control = configured[0] if configured else None
    metric = "converted" if any(row["converted"] for row in rows) else "clicked"
    for row in rows:
        row["significance"] = None
        if control is None or row is control or not row["configured"]:
            continue
        test = two_proportion_test(control[metric], control["sent"], row[metric], row["sent"])
        if test is None:
            continue
        z, p = test
        row["significance"] = {"against": control["variant"], "metric": metric, "z": z, "p_value": p,
                               "significant": p < ALPHA and min(control["sent"], row["sent"]) >= MIN_SAMPLE}

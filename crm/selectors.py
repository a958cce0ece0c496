"""Reads that are more than a filter: the per-journey stats of ``/api/v1/crm/stats``."""

from __future__ import annotations

import datetime
from decimal import Decimal

from django.db.models import Avg, Count, Q, Sum

from .models import CRMPlaybook, CRMPlaybookExecution, CRMStepExecution
from .services import crm_journeys_ensure

S = CRMPlaybookExecution.Status


def _money(value) -> float:
    return float((value or Decimal("0")).quantize(Decimal("0.01")))


def journey_stats(tenant, *, started_after: datetime.datetime | None = None,
                  started_before: datetime.datetime | None = None, with_variants: bool = True) -> dict:
    """Per journey: started, active, completed, converted, cancelled, failed, conversion rate
    (converted / started), average conversion value and revenue recovered (sum of conversion values);
    executions counted by ``started_at`` within the optional range. One aggregate query (+ one for A/B)."""
    crm_journeys_ensure(tenant)
    executions = CRMPlaybookExecution.objects.for_tenant(tenant)
    if started_after is not None:
        executions = executions.filter(started_at__gte=started_after)
    if started_before is not None:
        executions = executions.filter(started_at__lt=started_before)
    rows = {r["playbook_id"]: r for r in executions.values("playbook_id").annotate(
        started=Count("id"),
        active=Count("id", filter=Q(status=S.ACTIVE)),
        completed=Count("id", filter=Q(status=S.COMPLETED)),
        converted=Count("id", filter=Q(status=S.CONVERTED)),
        cancelled=Count("id", filter=Q(status=S.CANCELLED)),
        failed=Count("id", filter=Q(status=S.FAILED)),
        revenue=Sum("conversion_value", filter=Q(status=S.CONVERTED)),
        average=Avg("conversion_value", filter=Q(status=S.CONVERTED, conversion_value__isnull=False)),
    ).order_by()}
    variants = _variant_outcomes(executions) if with_variants else {}
    journeys, totals = [], {k: 0 for k in ("started", "active", "completed", "converted", "cancelled", "failed")}
    revenue_total = Decimal("0")
    for playbook in CRMPlaybook.objects.for_tenant(tenant).order_by("name"):
        r = rows.get(playbook.pk, {})
        item = {"playbook_id": playbook.pk, "name": playbook.name, "title": str(playbook), "active": playbook.active}
        for key in totals:
            item[key if key != "active" else "active_executions"] = r.get(key, 0)
            totals[key] += r.get(key, 0)
        started, converted = r.get("started", 0), r.get("converted", 0)
        item["conversion_rate"] = round(converted / started, 4) if started else 0.0
        item["average_conversion_value"] = _money(r.get("average"))
        item["revenue_recovered"] = _money(r.get("revenue"))
        revenue_total += r.get("revenue") or Decimal("0")
        if variants.get(playbook.pk):
            item["ab_tests"] = variants[playbook.pk]
        journeys.append(item)
    totals["active_executions"] = totals.pop("active")
    totals["conversion_rate"] = round(totals["converted"] / totals["started"], 4) if totals["started"] else 0.0
    totals["revenue_recovered"] = _money(revenue_total)
    return {"journeys": journeys, "totals": totals}


def _variant_outcomes(executions) -> dict:
    """``{playbook_id: {step_order: {variant: {"sent": n, "converted": m, "conversion_rate": r}}}}``."""
    rows = (CRMStepExecution.objects.filter(execution__in=executions.values("pk")).exclude(variant="")
            .filter(status=CRMStepExecution.Status.SENT)
            .values("execution__playbook_id", "step_order", "variant")
            .annotate(sent=Count("id"), converted=Count("id", filter=Q(execution__status=S.CONVERTED))).order_by())
    out: dict = {}
    for r in rows:
        cell = {"sent": r["sent"], "converted": r["converted"],
                "conversion_rate": round(r["converted"] / r["sent"], 4) if r["sent"] else 0.0}
        out.setdefault(r["execution__playbook_id"], {}).setdefault(str(r["step_order"]), {})[r["variant"]] = cell
    return out

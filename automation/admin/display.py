"""Readable summaries the automation admin shows: a rule in one line, a trigger's settings in words, a
condition trace as a table, run outcomes and refusals as message text. Plain functions of plain values."""

from __future__ import annotations

import json

from django.core.exceptions import ValidationError
from django.utils.html import format_html, format_html_join
from django.utils.text import Truncator

from csplatform.json_schema import duration_words

from ..conditions.tree import iter_leaves
from ..models import Workflow


def _num(value) -> str:
    """40.0 -> "40", 2.5 -> "2.5"."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    return str(int(number)) if number.is_integer() else f"{number:g}"


def _items(value) -> str:
    return ", ".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)


def trigger_details(trigger_type: str, config: dict, model_type: str) -> list[str]:
    """The parts of a trigger's config a CSM needs to recognise the rule, in words."""
    c = config if isinstance(config, dict) else {}
    parts: list[str] = []
    if trigger_type == "health_score_change":
        direction, threshold = c.get("direction") or "decrease", c.get("threshold")
        if threshold is not None:
            parts.append({"decrease": f"below {_num(threshold)}", "increase": f"at or above {_num(threshold)}"}
                         .get(direction, f"crossing {_num(threshold)}"))
        parts.append(direction)
        if c.get("minimum_change"):
            parts.append(f"by at least {_num(c['minimum_change'])}")
        if c.get("time_window"):
            parts.append(f"within {duration_words(c['time_window'])}")
    elif trigger_type in ("model_created", "model_deleted", "account_created"):
        parts.append(model_type or "account")
    elif trigger_type in ("model_updated", "field_changed"):
        fields = c.get("fields") or ([c["field"]] if c.get("field") else [])
        parts.append(f"{model_type}.{'/'.join(map(str, fields))}" if fields else model_type)
        if "from" in c:
            parts.append(f"from {c['from']}")
        if "to" in c:
            parts.append(f"to {c['to']}")
    elif trigger_type in ("status_change", "stage_change"):
        kind = trigger_type.split("_")[0]
        for key in (f"from_{kind}", f"to_{kind}"):
            if c.get(key):
                parts.append(f"{key.split('_')[0]} {c[key]}")
        if c.get("include_new_accounts"):
            parts.append("new accounts too")
    elif trigger_type == "engagement_event":
        parts += [str(c[k]) for k in ("event_type",) if c.get(k)]
        if c.get("engagement_types"):
            parts.append(_items(c["engagement_types"]))
        if c.get("time_threshold"):
            parts.append(f"after {duration_words(c['time_threshold'])}")
    elif trigger_type == "goal_event":
        parts += [str(c[k]) for k in ("event",) if c.get(k)]
        if c.get("goal_types"):
            parts.append(_items(c["goal_types"]))
    elif trigger_type == "event":
        parts += [str(c[k]) for k in ("event_type",) if c.get(k)]
    elif trigger_type == "scheduled":
        parts.append(" ".join(str(c[k]) for k in ("schedule", "time", "timezone") if c.get(k)))
        if c.get("days_of_week"):
            parts.append(f"days {_items(c['days_of_week'])}")
    elif trigger_type == "time_based":
        parts += [p for p in (model_type, f"every {duration_words(c['check_every'])}" if c.get("check_every") else "")
                  if p]
    elif trigger_type not in ("manual", "webhook"):
        # A trigger registered by another app: its simple settings, as they are.
        if model_type:
            parts.append(model_type)
        parts += [f"{k}={v}" for k, v in c.items() if isinstance(v, (str, int, float, bool)) and v not in ("", None)][:3]
    if c.get("debounce_seconds"):
        parts.append(f"debounce {duration_words(c['debounce_seconds'], 'seconds')}")
    return [p for p in parts if p]


def condition_count(tree) -> int:
    if not tree:
        return 0
    try:
        return sum(1 for _ in iter_leaves(tree))
    except (KeyError, TypeError, AttributeError):  # not a normalised tree (never saved through the service)
        return len(tree) if isinstance(tree, list) else 1


def rule_summary(rule: Workflow) -> str:
    """ "health_score_change (below 40, decrease) → 1 condition → create_task, webhook"."""
    details = trigger_details(rule.trigger_type, rule.trigger_config, rule.model_type)
    trigger = f"{rule.trigger_type} ({', '.join(details)})" if details else rule.trigger_type
    count = condition_count(rule.conditions)
    when = "no conditions" if count == 0 else f"{count} condition{'s' if count != 1 else ''}"
    steps = rule.actions if isinstance(rule.actions, list) else []
    then = ", ".join(str(a.get("type")) if isinstance(a, dict) else str(a) for a in steps) or "no actions"
    return f"{trigger} → {when} → {then}"


def trace_table(trace):
    """The condition evaluation of a debug-mode run: which condition passed or failed, with the values seen."""
    if not trace:
        return "-"
    rows = []
    for entry in trace:
        if not isinstance(entry, dict):
            rows.append(("", "", "", json.dumps(entry, default=str), ""))
            continue
        passed = entry.get("passed")
        rows.append((
            "✔" if passed else "✘", entry.get("field", ""), entry.get("operator", ""),
            json.dumps(entry.get("expected"), ensure_ascii=False, default=str),
            json.dumps(entry.get("actual"), ensure_ascii=False, default=str),
        ))
    return format_html(
        "<table><thead><tr><th></th><th>Field</th><th>Operator</th><th>Expected</th><th>Actual</th></tr></thead>"
        "<tbody>{}</tbody></table>",
        format_html_join("", "<tr><td>{}</td><td>{}</td><td>{}</td><td><code>{}</code></td><td><code>{}</code></td></tr>",
                         rows),
    )


def duration_text(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    return f"{seconds:.1f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def failed_conditions(trace) -> str:
    misses = [e for e in trace or [] if isinstance(e, dict) and not e.get("passed")]
    return "; ".join(
        f"{e.get('field')} {e.get('operator')} {json.dumps(e.get('expected'), default=str)} "
        f"(was {json.dumps(e.get('actual'), default=str)})"
        for e in misses[:5]
    )


def outcome_text(status: str, steps) -> str:
    """ "success — create_task: success ({...}); webhook: failed (timeout)" from (type, status, error, output)."""
    parts = []
    for action_type, step_status, error, output in steps:
        detail = error or (json.dumps(output, default=str) if output else "")
        parts.append(f"{action_type}: {step_status}" + (f" ({Truncator(detail).chars(160)})" if detail else ""))
    return f"{status}" + (f" — {'; '.join(parts)}" if parts else " (no actions)")


def refusal_text(exc: ValidationError) -> str:
    """A ValidationError naming fields as one line for an admin message: "entity_id: there is no contact …"."""
    if hasattr(exc, "error_dict"):
        return "; ".join(f"{key}: {' '.join(texts)}" for key, texts in exc.message_dict.items())
    return " ".join(exc.messages)


def delivery_text(delivery: dict | None) -> str:
    """A step's messages in words: "delivered", "retrying (attempt 1 of 8, next 14:05 UTC): HTTP 500", "dead: …"."""
    if not delivery:
        return "-"
    state = delivery["status"]
    count = f" ({delivery['messages']} messages, worst shown)" if delivery["messages"] > 1 else ""
    if state == "retrying":
        when = delivery["next_attempt_at"]
        state = (f"retrying (attempt {delivery['attempts']} of {delivery['max_attempts']}"
                 + (f", next {when:%Y-%m-%d %H:%M} UTC" if when else "") + ")")
    if delivery["error"] and delivery["status"] in ("retrying", "dead"):
        state += f": {Truncator(delivery['error']).chars(160)}"
    return state + count


def run_outcome_text(status: str, counts: dict | None) -> str:
    """ "Delivery failed (1 of 2 messages dead)", "Success (1 message retrying)", or just the status."""
    label = "Delivery failed" if status == "delivery_failed" else status.capitalize()
    if not counts:
        return label
    total = sum(counts.values())
    parts = [f"{counts[state]} of {total} message{'s' if total != 1 else ''} {state}"
             for state in ("dead", "retrying", "queued") if counts.get(state)]
    return f"{label} ({'; '.join(parts)})" if parts else f"{label} (all {total} delivered)"

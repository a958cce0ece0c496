"""The two seeds' shapes of a rule, translated to the one rule model and back. Plain data in, plain data out.

Seed 001 writes a workflow with ``condition_config`` and a single ``action_type``/``action_config`` (or an
``actions`` list); seed 003 writes an event trigger with ``trigger_conditions`` and flat actions in
``action_configuration.actions`` (``{"type": "create_task", "title": ...}``). The service
(``automation.services.workflow_save``) knows only ``conditions`` and ``[{"type", "config"}]``, and names
errors in those terms; ``rename_errors`` puts them back in the words the client used.
"""

from __future__ import annotations

from typing import Any

# How often seed 003's ``action_configuration.schedule`` checks a time-based rule (its ``check_every``).
SCHEDULE_EVERY = {"hourly": "1h", "daily": "1d", "weekly": "1w"}


def canonical_action(item: Any) -> tuple[Any, bool]:
    """``({"type", "config"}, was_flat)`` from either form. Anything that is not an object is passed through
    for the service to refuse with its usual ``actions[i].type`` error."""
    if not isinstance(item, dict):
        return item, False
    if "config" in item:
        config = item["config"]
        extra = {k: v for k, v in item.items() if k not in ("type", "config")}
        if isinstance(config, dict) and extra:
            config = {**config, **extra}  # e.g. seed 001's per-step "delay" written beside config
        return {"type": item.get("type"), "config": config}, False
    return {"type": item.get("type"), "config": {k: v for k, v in item.items() if k != "type"}}, True


def canonical_actions(items: Any) -> tuple[Any, list[int]]:
    """The list in canonical form and the positions that were written flat (for error names)."""
    if not isinstance(items, list):
        return items, []  # the service says "actions: must be a list"
    out, flat = [], []
    for position, item in enumerate(items):
        action, was_flat = canonical_action(item)
        out.append(action)
        if was_flat:
            flat.append(position)
    return out, flat


def flat_action(spec: dict) -> dict:
    """Seed 003's flat form of a stored ``{"type", "config"}`` action."""
    return {**(spec.get("config") or {}), "type": spec.get("type")}


def status_for(is_active: bool, current: str | None) -> str:
    """Seed 003's ``is_active`` as a status: switching an active rule off pauses it; a new or draft rule
    switched off stays a draft (it never ran, so "paused" would be misleading)."""
    if is_active:
        return "active"
    return "paused" if current in ("active", "paused") else "draft"


def _renamed(key: str, old: str, new: str) -> str | None:
    if key == old:
        return new
    if key.startswith(old + ".") or key.startswith(old + "["):
        return new + key[len(old):]
    return None


def rename_errors(detail: dict, renames: list[tuple[str, str]]) -> dict:
    """``{"conditions.conditions[0].operator": ...}`` -> ``{"trigger_conditions[0].operator": ...}``: the first
    rename whose prefix matches (at a ``.`` or ``[`` boundary) wins, so list the specific ones first."""
    out: dict = {}
    for key, messages in detail.items():
        messages = [_without_path(str(m), key) for m in (messages if isinstance(messages, list) else [messages])]
        for old, new in renames:
            renamed = _renamed(key, old, new)
            if renamed is not None:
                key = renamed
                break
        out.setdefault(key, []).extend(messages)
    return out


def _without_path(message: str, key: str) -> str:
    """The service repeats the condition's path in the message ("conditions[0].operator: Unknown ..."), in
    the service's words; the key already names it in the client's."""
    inner = key.split(".", 1)[1] if "." in key else ""
    return message[len(inner) + 2:] if inner and message.startswith(inner + ": ") else message


def flat_errors(detail, prefix: str) -> dict:
    """Nested serializer errors as the dotted keys the service uses: ``{"retry_configuration.max_retries": [...]}``."""
    if isinstance(detail, dict):
        out: dict = {}
        for key, value in detail.items():
            out.update(flat_errors(value, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix: list(detail) if isinstance(detail, list) else [detail]}


def condition_renames(field: str, raw: Any) -> list[tuple[str, str]]:
    """The service reports conditions under ``conditions.<path in the input>``; a list input's own path
    starts with ``conditions[``, which the client wrote as ``<field>[``."""
    if isinstance(raw, list):
        return [("conditions.conditions", field), ("conditions", field)]
    return [("conditions", field)]


def action_renames(prefix: str, flat_positions: list[int]) -> list[tuple[str, str]]:
    """Errors in flat actions drop the ``.config`` the client never wrote."""
    renames = [(f"actions[{i}].config", f"{prefix}[{i}]") for i in flat_positions]
    return renames + [("actions", prefix)] if prefix != "actions" else renames

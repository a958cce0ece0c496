"""Writing the outcomes of a batch of attempts: what each result means for its row, and one UPDATE for all.

``outcome_fields`` turns one attempt's ``Result`` into the row's new values (delivered, failed with the next
attempt's time, or dead). ``write_outcomes`` writes a batch of them, each only if the row still carries the
claim token it was claimed with (a row the sweeper took back is left alone): on PostgreSQL one
``UPDATE … FROM (VALUES …) RETURNING id`` statement, elsewhere one conditional update per row. It returns
the ids it wrote. The caller holds the transaction.
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import connection

from . import retry
from .models import Outbox
from .transports import Result

S = Outbox.Status
#: The columns an outcome writes, in the order of the VALUES rows below (after id and claim token).
COLUMNS = ("status", "last_status_code", "last_response", "error", "updated_at", "delivered_at", "next_attempt_at")


def outcome_fields(message: Outbox, result: Result, *, now, retry_base) -> dict:
    """The row's new values after this attempt; ``retry_base`` is what a retry's delay counts from."""
    fields = {"last_status_code": result.status_code,
              "last_response": (result.body or "")[: settings.OUTBOX_RESPONSE_EXCERPT],
              "claim_token": None, "updated_at": now}
    if result.ok:
        fields.update(status=S.DELIVERED, delivered_at=now, error="")
    elif result.permanent:
        fields.update(status=S.DEAD, error=result.error)
    elif message.attempts >= message.max_attempts:
        fields.update(status=S.DEAD, error=f"gave up after {message.attempts} attempts: {result.error}")
    else:
        delay = retry.next_delay(message.retry_policy or {"schedule": retry.DEFAULT_SCHEDULE[1:]}, message.attempts,
                                 result.retry_after)
        fields.update(status=S.FAILED, error=result.error, next_attempt_at=retry_base + timedelta(seconds=delay))
    return fields


def write_outcomes(outcomes: list[tuple[Outbox, dict]]) -> set[int]:
    """Write each (message, fields) where the row is still ``sending`` under the message's claim token;
    returns the ids written (run it in the system context: the batch may span tenants)."""
    if not outcomes:
        return set()
    if connection.vendor != "postgresql":
        return {message.pk for message, fields in outcomes
                if Outbox.objects.filter(pk=message.pk, status=S.SENDING, claim_token=message.claim_token)
                .update(**fields)}
    row = "(%s::bigint, %s::uuid, %s::varchar, %s::integer, %s::text, %s::text, %s::timestamptz, %s::timestamptz, " \
          "%s::timestamptz)"
    params: list = []
    for message, fields in outcomes:
        params += [message.pk, message.claim_token, *(fields.get(column) for column in COLUMNS)]
    # The VALUES' column list in the order of COLUMNS; a NULL delivered_at / next_attempt_at keeps the row's own.
    sql = f"""
        UPDATE {Outbox._meta.db_table} AS o SET
            status = v.status, last_status_code = v.last_status_code, last_response = v.last_response,
            error = v.error, claim_token = NULL, updated_at = v.updated_at,
            delivered_at = COALESCE(v.delivered_at, o.delivered_at),
            next_attempt_at = COALESCE(v.next_attempt_at, o.next_attempt_at)
        FROM (VALUES {", ".join([row] * len(outcomes))}) AS v(id, claim_token, {", ".join(COLUMNS)})
        WHERE o.id = v.id AND o.status = %s AND o.claim_token = v.claim_token
        RETURNING o.id"""
    with connection.cursor() as cursor:
        cursor.execute(sql, [*params, S.SENDING])
        return {pk for (pk,) in cursor.fetchall()}

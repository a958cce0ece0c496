"""Secrets at rest: Fernet encryption of the tenants' secrets (docs/security.md "Secrets at rest").

``FIELD_ENCRYPTION_KEYS`` (settings, from the comma-separated env variable) is a list of Fernet keys: the
first encrypts, every one decrypts (``MultiFernet``), so a key is rotated by putting a new one first, running
``manage.py rotate_encryption_key`` and then dropping the old one. Production must set it (the settings refuse
to start without it when DEBUG is off); debug and test runs derive one key from ``SECRET_KEY``
(``settings._field_encryption_keys``).

``EncryptedTextField`` stores ``fernet:<token>`` and gives the plain value back when a row is read. Fernet is
randomised (the same secret encrypts differently each time), so the value cannot be looked up: filtering on
such a field is refused (``FieldError``); only ``isnull`` works. Find the row by another column.
"""

from __future__ import annotations

from collections import Counter
from typing import Callable

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django import forms
from django.conf import settings
from django.core import checks
from django.core.exceptions import FieldError, ImproperlyConfigured
from django.db import models, transaction

PREFIX = "fernet:"


class DecryptionError(ImproperlyConfigured):
    """A stored value no configured key decrypts: the key that encrypted it is missing or wrong."""


def configured_keys() -> tuple[str, ...]:
    keys = getattr(settings, "FIELD_ENCRYPTION_KEYS", ())
    if isinstance(keys, str):
        keys = keys.split(",")
    keys = tuple(k.strip() for k in keys if k and k.strip())
    if not keys:
        raise ImproperlyConfigured(
            "FIELD_ENCRYPTION_KEYS is empty: set it to one or more comma-separated Fernet keys "
            "(python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())')")
    return keys


# Built on first use and rebuilt whenever the configured keys differ from the ones it was built from, so
# ``override_settings`` and a reloaded configuration take effect without a restart or a signal.
_built: tuple[tuple[str, ...], MultiFernet, Fernet] | None = None


def _fernets() -> tuple[MultiFernet, Fernet]:
    global _built
    keys = configured_keys()
    if _built is None or _built[0] != keys:
        fernets = []
        for number, key in enumerate(keys, 1):
            try:
                fernets.append(Fernet(key))
            except (ValueError, TypeError):  # the key itself is never part of the message
                raise ImproperlyConfigured(
                    f"FIELD_ENCRYPTION_KEYS: key {number} of {len(keys)} is not a Fernet key (32 url-safe "
                    f"base64-encoded bytes, e.g. from Fernet.generate_key())") from None
        _built = (keys, MultiFernet(fernets), fernets[0])
    return _built[1], _built[2]


def is_encrypted(value) -> bool:
    return isinstance(value, str) and value.startswith(PREFIX)


def encrypt(plain: str) -> str:
    """``fernet:<token>`` of ``plain`` under the first key."""
    return PREFIX + _fernets()[0].encrypt(plain.encode()).decode()


def decrypt(stored: str, *, what: str = "a value") -> str:
    """The plain text of ``fernet:<token>``; raises ``DecryptionError`` (naming ``what``, never the value) when no
    configured key fits."""
    try:
        return _fernets()[0].decrypt(stored[len(PREFIX):].encode()).decode()
    except InvalidToken:
        raise DecryptionError(
            f"Cannot decrypt {what}: none of the {len(configured_keys())} FIELD_ENCRYPTION_KEYS decrypts it (was "
            f"the key that encrypted it removed before `manage.py rotate_encryption_key` ran, or is the setting "
            f"wrong?)") from None


def decrypts(stored: str) -> bool:
    try:
        decrypt(stored)
    except DecryptionError:
        return False
    return True


class EncryptedTextField(models.TextField):
    """A text column holding ``fernet:<token>``; the model sees the plain value. Empty strings and NULL are stored
    as they are (nothing to hide; blank still means "not set"). Not searchable: lookups other than ``isnull``
    raise ``FieldError``. ``max_length`` (optional) is checked by forms and serializers, not by the database."""

    description = "Text encrypted at rest (Fernet)"

    def from_db_value(self, value, expression, connection):
        if is_encrypted(value):
            return decrypt(value, what=self._label())
        return value  # NULL, blank, or a row written before it was encrypted (the migrations encrypt those)

    def get_prep_value(self, value):
        value = super().get_prep_value(value)
        if value is None or value == "":
            return value
        if is_encrypted(value) and decrypts(value):  # already ciphertext of ours (e.g. rotate_encryption_key)
            return value
        return encrypt(value)

    def get_lookup(self, lookup_name):
        if lookup_name == "isnull":
            return super().get_lookup(lookup_name)
        raise FieldError(f"{self._label()} is encrypted at rest (csplatform.crypto): it cannot be looked up by value "
                         f"(`__{lookup_name}`); find the row by another field.")

    def formfield(self, **kwargs):
        return super().formfield(**{"widget": forms.TextInput, **kwargs})  # a secret is one line, not a textarea

    def _label(self) -> str:
        model = getattr(self, "model", None)
        return f"{model._meta.label}.{self.name}" if model is not None else "an encrypted field"


# --- rewriting a column in place: the migrations (encrypt / decrypt) and rotate_encryption_key ---------------

def column_rewrite(connection, table: str, column: str, change: Callable[[str | None], tuple[str, str | None]], *,
                   pk: str = "id", batch_size: int = 500) -> Counter:
    """Apply ``change(stored) -> (outcome, new value or None to keep it)`` to every row of ``table.column``, in
    batches of ``batch_size`` rows (keyset pagination on ``pk``), one transaction per batch, with raw SQL (so it
    works on historical models and whatever the field class is). A row is written only if it still holds the value
    read, so a concurrent change is never overwritten (outcome ``changed meanwhile``). Returns the outcomes counted.
    The caller enters the tenancy context row-level security needs (``system_context``)."""
    quote = connection.ops.quote_name
    read = f"SELECT {quote(pk)}, {quote(column)} FROM {quote(table)}"
    after = f" WHERE {quote(pk)} > %s"
    order = f" ORDER BY {quote(pk)} LIMIT {int(batch_size)}"
    update = f"UPDATE {quote(table)} SET {quote(column)} = %s WHERE {quote(pk)} = %s AND {quote(column)} = %s"
    counts: Counter = Counter()
    last = None
    while True:
        with transaction.atomic(using=connection.alias), connection.cursor() as cursor:
            if last is None:
                cursor.execute(read + order)
            else:
                cursor.execute(read + after + order, [last])
            rows = cursor.fetchall()
            for key, stored in rows:
                outcome, new = change(stored)
                if new is not None and new != stored:
                    cursor.execute(update, [new, key, stored])
                    outcome = outcome if cursor.rowcount == 1 else "changed meanwhile"
                counts[outcome] += 1
        if len(rows) < batch_size:
            return counts
        last = rows[-1][0]


def encrypt_plain(stored):
    """``column_rewrite`` change of the forward migrations: plain -> ``fernet:``; ciphertext and blanks stay."""
    if stored is None or stored == "":
        return "empty", None
    if is_encrypted(stored) and decrypts(stored):
        return "already encrypted", None
    return "encrypted", encrypt(stored)


def decrypt_to_plain(stored):
    """``column_rewrite`` change of the reverse migrations: ``fernet:`` -> plain (raises if no key fits)."""
    if not is_encrypted(stored):
        return "plain", None
    return "decrypted", decrypt(stored)


def reencrypt(stored):
    """``column_rewrite`` change of ``rotate_encryption_key``: ciphertext under an older key -> the first key.
    ``undecryptable`` rows are left as they are and counted."""
    if stored is None or stored == "":
        return "empty", None
    if not is_encrypted(stored):
        return "encrypted", encrypt(stored)
    multi, primary = _fernets()
    token = stored[len(PREFIX):].encode()
    try:
        primary.decrypt(token)
        return "current", None
    except InvalidToken:
        pass
    try:
        return "rotated", PREFIX + multi.rotate(token).decode()
    except InvalidToken:
        return "undecryptable", None


@checks.register(checks.Tags.security)
def check_field_encryption_keys(app_configs=None, **kwargs):
    """``manage.py check`` (and runserver, migrate) report a missing or malformed key at start-up, not at the
    first secret read."""
    try:
        _fernets()
    except ImproperlyConfigured as problem:
        return [checks.Error(str(problem), id="csplatform.E001")]
    return []

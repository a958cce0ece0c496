"""The benchmarks' database: a fresh one created next to DATABASE_URL's, migrated, dropped afterwards."""

from __future__ import annotations

import os
from typing import Callable


def run_in_throwaway_database(prefix: str, work: Callable[[], None], *, keep: bool = False) -> None:
    """``django.setup()``, create ``<prefix>_<pid>`` (as the test runner does, migrations included), run
    ``work()`` and drop the database unless ``keep``."""
    import django

    django.setup()
    from django.db import connection

    connection.settings_dict.setdefault("TEST", {})["NAME"] = f"{prefix}_{os.getpid()}"
    old_name = connection.settings_dict["NAME"]
    print(f"creating throwaway database {connection.settings_dict['TEST']['NAME']} ({connection.vendor})", flush=True)
    connection.creation.create_test_db(verbosity=0, autoclobber=True, keepdb=False, serialize=False)
    try:
        work()
    finally:
        if keep:
            print(f"kept database {connection.settings_dict['NAME']}")
        else:
            connection.creation.destroy_test_db(old_name, verbosity=0)

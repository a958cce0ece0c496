"""The machine's yardstick: every benchmark measures it in the same run and reports its results as ratios to it.

Absolute numbers on a shared 2-core machine move with whatever else runs; a ratio to what PostgreSQL itself
manages in the same minutes says how close the platform gets to the machine's limit. Two yardsticks:

* ``pgbench_tps``: ``pgbench -N -c 2 -j 2 -T 10`` (the simple-update script without the contended branch
  and teller updates: three UPDATE/INSERTs and a SELECT per transaction) on a pgbench database next to
  DATABASE_URL's (``csplatform_pgbench``, initialised at scale 10 the first time, kept for later runs);
* ``insert_rate``: a fixed raw-psycopg loop, 2 connections, each committing single-row INSERTs into an
  ordinary (logged) table: commits per second, for machines without the pgbench binary.

    .venv/bin/python bench/calibration.py        # prints both

A benchmark calls ``calibrate()`` once and ``ratio(value, base)`` for each figure.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

PGBENCH_DB = "csplatform_pgbench"
PGBENCH_SCALE = 10


@dataclass(frozen=True)
class Calibration:
    pgbench_tps: float | None  # None when the pgbench binary is missing
    insert_rate: float
    seconds: int = 10  # how long pgbench ran

    @property
    def base(self) -> float:
        """The yardstick ratios are taken against: pgbench tx/s, else the insert loop's commits/s."""
        return self.pgbench_tps or self.insert_rate

    @property
    def base_name(self) -> str:
        return "pgbench -N -c 2 tx/s" if self.pgbench_tps else "raw insert commits/s"

    def line(self) -> str:
        pgbench = f"{self.pgbench_tps:,.0f} tx/s" if self.pgbench_tps else "pgbench not installed"
        return f"calibration: pgbench -N -c 2 -T {self.seconds}: {pgbench}; raw psycopg insert loop (2 connections): {self.insert_rate:,.0f} commits/s"

    def ratio(self, value: float) -> str:
        return f"{value / self.base:.2f}x {self.base_name}"


def _server(url: str | None = None) -> dict:
    parts = urlsplit(url or os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres"))
    return {"host": parts.hostname or "127.0.0.1", "port": str(parts.port or 5432), "user": parts.username or "postgres"}


def connect(dbname: str):
    import psycopg

    server = _server()
    return psycopg.connect(host=server["host"], port=server["port"], user=server["user"], dbname=dbname, autocommit=True)


def _ensure_pgbench_db(env: dict, server: dict) -> None:
    with connect("postgres") as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [PGBENCH_DB]).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{PGBENCH_DB}"')
    with connect(PGBENCH_DB) as conn:
        ready = conn.execute("SELECT to_regclass('pgbench_accounts') IS NOT NULL").fetchone()[0]
    if not ready:
        subprocess.run(["pgbench", "-i", "-q", "-s", str(PGBENCH_SCALE), "-h", server["host"], "-p", server["port"],
                        "-U", server["user"], PGBENCH_DB], env=env, check=True, capture_output=True)


def pgbench_tps(seconds: int = 10, clients: int = 2) -> float | None:
    """Transactions per second of ``pgbench -N`` (excluding connection set-up)."""
    if not shutil.which("pgbench"):
        return None
    server = _server()
    env = {**os.environ, "PGOPTIONS": ""}
    _ensure_pgbench_db(env, server)
    result = subprocess.run(
        ["pgbench", "-N", "-n", "-c", str(clients), "-j", str(clients), "-T", str(seconds), "-h", server["host"],
         "-p", server["port"], "-U", server["user"], PGBENCH_DB], env=env, check=True, capture_output=True, text=True)
    match = re.search(r"tps = ([\d.]+)", result.stdout)
    return float(match.group(1)) if match else None


def insert_rate(seconds: float = 5.0, connections: int = 2) -> float:
    """Committed single-row INSERTs per second over ``connections`` raw psycopg connections."""
    with connect(_pgbench_or_default_db()) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS calibration_insert (id bigserial PRIMARY KEY, at timestamptz, note text)")
        conn.execute("TRUNCATE calibration_insert")
    deadline = time.perf_counter() + seconds

    def loop(slot: int) -> int:
        done = 0
        with connect(_pgbench_or_default_db()) as conn:
            while time.perf_counter() < deadline:
                conn.execute("INSERT INTO calibration_insert (at, note) VALUES (now(), 'calibration')")
                done += 1
        return done

    return threaded_rate(loop, connections)


def threaded_rate(work, slots: int) -> float:
    """Run ``work(slot)`` in ``slots`` threads at once; the sum of what they return (units done) per second."""
    counts = [0] * slots

    def run(slot: int) -> None:
        counts[slot] = work(slot)

    threads = [threading.Thread(target=run, args=(slot,)) for slot in range(slots)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(counts) / (time.perf_counter() - started)


def _pgbench_or_default_db() -> str:
    with connect("postgres") as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [PGBENCH_DB]).fetchone():
            conn.execute(f'CREATE DATABASE "{PGBENCH_DB}"')
    return PGBENCH_DB


def calibrate(seconds: int = 10) -> Calibration:
    """Both yardsticks, printed, one after the other (call it before and, for long benchmarks, after)."""
    result = Calibration(pgbench_tps=pgbench_tps(seconds), insert_rate=insert_rate(min(seconds, 5)), seconds=seconds)
    print(result.line(), flush=True)
    return result


if __name__ == "__main__":
    seconds = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    calibrate(seconds)

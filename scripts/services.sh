#!/usr/bin/env bash
# Make sure PostgreSQL and Redis answer on 127.0.0.1; start them if installed but down, else stop with
# a clear message. Then create the application role (not a superuser, so row-level security binds it).
set -euo pipefail
PGHOST=${PGHOST:-127.0.0.1}; PGPORT=${PGPORT:-5432}; PGADMIN=${PGADMIN:-postgres}
APP_ROLE=${APP_DB_ROLE:-csplatform}

pg_up() { pg_isready -q -h "$PGHOST" -p "$PGPORT" 2>/dev/null; }
redis_up() { redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null | grep -q PONG; }

if ! pg_up; then
  if command -v pg_ctlcluster >/dev/null && [ -d /etc/postgresql ]; then
    echo "starting PostgreSQL..."
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -1)" main start || true
    for _ in $(seq 1 30); do pg_up && break; sleep 1; done
  fi
  pg_up || { echo "ERROR: PostgreSQL is not running on $PGHOST:$PGPORT and could not be started (is it installed?)." >&2; exit 1; }
fi
if ! redis_up; then
  if command -v redis-server >/dev/null; then
    echo "starting Redis..."
    mkdir -p /var/lib/redis /var/log/redis 2>/dev/null || true
    redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
      --dir /var/lib/redis --logfile /var/log/redis/ci.log || redis-server --daemonize yes --port 6379 --save ""
    for _ in $(seq 1 30); do redis_up && break; sleep 1; done
  fi
  redis_up || { echo "ERROR: Redis is not running on 127.0.0.1:6379 and could not be started (is it installed?)." >&2; exit 1; }
fi

psql -q -h "$PGHOST" -p "$PGPORT" -U "$PGADMIN" -d postgres -v ON_ERROR_STOP=1 <<SQL
DO \$\$ BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '$APP_ROLE') THEN
    CREATE ROLE $APP_ROLE LOGIN CREATEDB NOSUPERUSER NOBYPASSRLS;
  ELSE
    ALTER ROLE $APP_ROLE LOGIN CREATEDB NOSUPERUSER NOBYPASSRLS;
  END IF;
END \$\$;
SQL
# The runtime role: logs in, owns nothing, may not bypass RLS; each migrate grants it DML (csplatform/rls.py).
psql -q -h "$PGHOST" -p "$PGPORT" -U "$PGADMIN" -d postgres -v ON_ERROR_STOP=1 <<SQL
DO \$\$ BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '${APP_ROLE}_app') THEN
    CREATE ROLE ${APP_ROLE}_app LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;
  ELSE
    ALTER ROLE ${APP_ROLE}_app LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;
  END IF;
END \$\$;
SQL
psql -q -h "$PGHOST" -p "$PGPORT" -U "$PGADMIN" -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '$APP_ROLE'" | grep -q 1 \
  || psql -q -h "$PGHOST" -p "$PGPORT" -U "$PGADMIN" -d postgres -c "CREATE DATABASE $APP_ROLE OWNER $APP_ROLE"

#!/bin/sh
# Run once by the postgres image on an empty data directory (mounted into /docker-entrypoint-initdb.d).
# Two roles, neither a superuser nor able to bypass row-level security (README "Tenancy", docs/security.md):
# * the owner (APP_DB_USER, default csplatform) owns the application database; `migrate` runs as it, creates
#   the tables and grants the runtime role its rights;
# * the runtime role (RUNTIME_DB_USER, default csplatform_app) is what web, workers and beat connect as: it
#   owns nothing (an owner could switch RLS off) and gets DML from each migrate (DATABASE_APP_ROLE).
# On a volume made before the runtime role existed, run the two statements for it by hand (docs/operations.md).
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
     -v role="${APP_DB_USER:-csplatform}" -v password="$APP_DB_PASSWORD" \
     -v runtime_role="${RUNTIME_DB_USER:-csplatform_app}" -v runtime_password="$RUNTIME_DB_PASSWORD" <<'SQL'
CREATE ROLE :"role" LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE PASSWORD :'password';
CREATE DATABASE :"role" OWNER :"role";
CREATE ROLE :"runtime_role" LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE PASSWORD :'runtime_password';
SQL

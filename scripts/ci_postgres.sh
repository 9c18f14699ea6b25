#!/usr/bin/env bash
# A local PostgreSQL for the tests, idempotent: installs Debian's `postgresql` if missing, starts the
# cluster, makes a role and a database, and prints the SQLAlchemy URL (the only thing on stdout), e.g.
#   KAIGA_TEST_POSTGRES_URL="$(bash scripts/ci_postgres.sh)"; export KAIGA_TEST_POSTGRES_URL
# Needs root (CI runs as root) or sudo. Tests then run their store and server cases on PostgreSQL too.
set -euo pipefail

ROLE=kaiga_test
DB=kaiga_test
PASSWORD=kaiga_test  # a throwaway role on a loopback-only test cluster

if [ "$(id -u)" = 0 ]; then SUDO=""; elif command -v sudo >/dev/null; then SUDO="sudo"; else
  echo "ci_postgres: needs root or sudo to install and start PostgreSQL" >&2; exit 1; fi

if ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
  $SUDO apt-get update -qq >&2
  # the package's post-install script creates and may start the cluster "main"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq postgresql >/dev/null
fi

VERSION="$(ls /usr/lib/postgresql | sort -V | tail -n 1)"
if ! pg_lsclusters -h | awk -v v="$VERSION" '$1 == v && $2 == "main" {found = 1} END {exit !found}'; then
  $SUDO pg_createcluster "$VERSION" main >&2
fi
if ! pg_lsclusters -h | awk -v v="$VERSION" '$1 == v && $2 == "main" && $4 == "online" {up = 1} END {exit !up}'; then
  $SUDO pg_ctlcluster "$VERSION" main start >&2
fi
PORT="$(pg_lsclusters -h | awk -v v="$VERSION" '$1 == v && $2 == "main" {print $3}')"

for _ in $(seq 1 60); do  # the server accepts connections a moment after pg_ctlcluster returns
  pg_isready -q -h 127.0.0.1 -p "$PORT" && break
  sleep 0.5
done
pg_isready -q -h 127.0.0.1 -p "$PORT" || { echo "ci_postgres: PostgreSQL did not start on port $PORT" >&2; exit 1; }

psql_admin() { $SUDO runuser -u postgres -- psql -p "$PORT" -v ON_ERROR_STOP=1 -qtA "$@"; }
if [ "$(psql_admin -c "SELECT 1 FROM pg_roles WHERE rolname = '$ROLE'")" != 1 ]; then
  psql_admin -c "CREATE ROLE $ROLE LOGIN PASSWORD '$PASSWORD'" >&2
fi
if [ "$(psql_admin -c "SELECT 1 FROM pg_database WHERE datname = '$DB'")" != 1 ]; then
  psql_admin -c "CREATE DATABASE $DB OWNER $ROLE" >&2
fi

echo "postgresql+psycopg://$ROLE:$PASSWORD@127.0.0.1:$PORT/$DB"

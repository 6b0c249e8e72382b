#!/usr/bin/env bash
#! Starts a private PostgreSQL cluster for the store tests and prints its URL on the last line.
#! Idempotent: installs Debian's postgresql only if missing, creates the cluster in $WASMHUB_PEERS/pg (default
#! ~/.cache/wasmhub/peers/pg) once, starts it on a free loopback port if it is not running, and creates the
#! `wasmhub` role (allowed to create databases: each test run makes its own) and database.
#! Usage: export WASMHUB_TEST_POSTGRES_URL="$(tests/peers/postgres.sh | tail -n1)"
set -euo pipefail
dir="${WASMHUB_PEERS:-$HOME/.cache/wasmhub/peers}/pg"

pg_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1; }
if [ -z "$(pg_bin)" ] || [ ! -x "$(pg_bin)/initdb" ]; then
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2
fi
bin="$(pg_bin)"

# initdb and postgres refuse to run as root, so the cluster belongs to the `postgres` OS user, which must be able
# to reach the folder. Home folders are often 0700: grant search (not read) permission on such ancestors.
as_postgres() { runuser -u postgres -- "$@"; }
mkdir -p "$dir"
ancestor=""
for part in $(echo "$dir" | tr '/' ' '); do
  ancestor="$ancestor/$part"
  if ! as_postgres test -x "$ancestor"; then
    echo "postgres.sh: letting the postgres user traverse $ancestor (chmod o+x)" >&2
    chmod o+x "$ancestor"
  fi
done
chown postgres:postgres "$dir"

if [ ! -s "$dir/data/PG_VERSION" ]; then
  as_postgres "$bin/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >&2
fi

if ! as_postgres "$bin/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
  port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
  # A throwaway test cluster: fsync off makes the many small test transactions cheap on a loaded machine.
  as_postgres "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c fsync=off -c synchronous_commit=off" start >&2
fi
# The running server's port is the fourth line of its pid file.
port="$(sed -n 4p "$dir/data/postmaster.pid")"

psql_admin() { psql -X -q -h 127.0.0.1 -p "$port" -U postgres -d postgres -tA "$@"; }
if [ "$(psql_admin -c "SELECT 1 FROM pg_roles WHERE rolname = 'wasmhub'")" != 1 ]; then
  psql_admin -c "CREATE ROLE wasmhub LOGIN CREATEDB PASSWORD 'wasmhub'"
fi
if [ "$(psql_admin -c "SELECT 1 FROM pg_database WHERE datname = 'wasmhub'")" != 1 ]; then
  psql_admin -c "CREATE DATABASE wasmhub OWNER wasmhub"
fi
echo "postgres://wasmhub:wasmhub@127.0.0.1:$port/wasmhub"

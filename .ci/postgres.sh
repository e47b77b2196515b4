#!/usr/bin/env bash
# Starts a throw-away PostgreSQL server on 127.0.0.1:${KATIB_PG_PORT:-55432} for the tests,
# installing Debian's postgresql package first when the machine lacks it.
# Prints the database URL on its last line. Stop it with: .ci/postgres.sh stop
set -euo pipefail
port=${KATIB_PG_PORT:-55432}
data=/tmp/katib-pg-$port
find_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }
bin=$(find_bin)
if [ "${1:-}" = stop ]; then
  [ -n "$bin" ] && [ -d "$data" ] && runuser -u postgres -- "$bin/pg_ctl" -D "$data" stop -m fast >/dev/null 2>&1 || true
  exit 0
fi
if [ -z "$bin" ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq postgresql >/dev/null
  bin=$(find_bin)
fi
if ! runuser -u postgres -- "$bin/pg_ctl" -D "$data" status >/dev/null 2>&1; then
  rm -rf "$data"; mkdir -p "$data"; chown postgres "$data"
  runuser -u postgres -- "$bin/initdb" -D "$data" -A trust -U postgres >/dev/null
  runuser -u postgres -- "$bin/pg_ctl" -D "$data" -l "$data/server.log" -w \
    -o "-p $port -k /tmp -c listen_addresses=127.0.0.1 -c fsync=off" start >/dev/null
fi
runuser -u postgres -- "$bin/psql" -h 127.0.0.1 -p "$port" -U postgres -tAc \
  "SELECT 1 FROM pg_database WHERE datname='katib_test'" | grep -q 1 ||
  runuser -u postgres -- "$bin/createdb" -h 127.0.0.1 -p "$port" -U postgres katib_test
echo "postgresql://postgres@127.0.0.1:$port/katib_test"

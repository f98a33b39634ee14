#!/usr/bin/env bash
# A private PostgreSQL server for the job tests: Debian's PostgreSQL in STATE_DIR, reached
# only through a Unix socket there (no TCP at all), with trust authentication for the
# user `cairn` and a small database `gateway` holding gateway-like configuration rows.
#
#   postgres.sh start STATE_DIR   start it; prints the environment to reach it:
#                                 PGHOST=STATE_DIR PGPORT=5432 PGUSER=cairn PGDATABASE=gateway
#   postgres.sh stop STATE_DIR    stop it
#
# PostgreSQL refuses to run as root; as root the server runs as `nobody`.
set -euo pipefail
cmd=${1:?usage: postgres.sh start|stop STATE_DIR}
state=${2:?usage: postgres.sh start|stop STATE_DIR}
bindir=$(dirname "$(command -v pg_ctl 2>/dev/null || ls /usr/lib/postgresql/*/bin/pg_ctl 2>/dev/null | tail -1 || true)")
if [ ! -x "$bindir/pg_ctl" ] || [ ! -x "$bindir/initdb" ]; then
  echo "postgres.sh: PostgreSQL's server is missing; run: apt-get install postgresql" >&2
  exit 1
fi
psql=$(command -v psql || echo "$bindir/psql")
as_server() {
  if [ "$(id -u)" = 0 ]; then setpriv --reuid=nobody --regid=nogroup --clear-groups -- "$@"; else "$@"; fi
}
case "$cmd" in
start)
  mkdir -p "$state"
  state=$(cd "$state" && pwd)
  if [ "$(id -u)" = 0 ]; then
    chown nobody:nogroup "$state"
    as_server test -w "$state" \
      || { echo "postgres.sh: user nobody cannot reach $state; make its parent folders world-searchable (chmod o+x)" >&2; exit 1; }
  fi
  if [ ! -f "$state/data/PG_VERSION" ]; then
    as_server "$bindir/initdb" -D "$state/data" -U cairn --auth=trust -E UTF8 --no-sync >"$state/initdb.log" 2>&1 \
      || { cat "$state/initdb.log" >&2; exit 1; }
  fi
  as_server "$bindir/pg_ctl" -D "$state/data" -l "$state/server.log" -w -t 60 \
    -o "-c listen_addresses='' -k $state -p 5432 -c fsync=off" start >/dev/null \
    || { cat "$state/server.log" >&2; exit 1; }
  export PGHOST=$state PGPORT=5432 PGUSER=cairn
  "$psql" -q -v ON_ERROR_STOP=1 -d postgres -c "CREATE DATABASE gateway" >/dev/null
  "$psql" -q -v ON_ERROR_STOP=1 -d gateway >/dev/null <<'SQL'
CREATE TABLE kps_config (id serial PRIMARY KEY, api text NOT NULL, setting text NOT NULL, value text NOT NULL);
INSERT INTO kps_config (api, setting, value)
  SELECT 'api-' || n, 'rate.limit', (n * 10)::text FROM generate_series(1, 500) AS n;
INSERT INTO kps_config (api, setting, value) VALUES ('petstore', 'backend.url', 'https://petstore.internal:8443');
SQL
  echo "PGHOST=$state PGPORT=5432 PGUSER=cairn PGDATABASE=gateway"
  ;;
stop)
  [ -f "$state/data/postmaster.pid" ] && as_server "$bindir/pg_ctl" -D "$state/data" -m immediate -w stop >/dev/null 2>&1
  true
  ;;
*)
  echo "usage: postgres.sh start|stop STATE_DIR" >&2
  exit 2
  ;;
esac

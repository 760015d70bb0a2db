#!/usr/bin/env bash
# A throwaway PostgreSQL server for the PostgresStore tests and benchmark.
#
#   scripts/postgres-for-tests.sh          start (or find running) -> last line:
#                                          ESCALADE_TEST_PG_DSN=postgresql://...
#   scripts/postgres-for-tests.sh stop     stop it and remove its data directory
#
# Usage in CI:  eval "export $(scripts/postgres-for-tests.sh | tail -n 1)"
#
# On a fresh Debian machine where we are root it installs the `postgresql`
# package when initdb/pg_ctl are missing. The cluster lives in a temporary
# directory owned by the `postgres` user (initdb refuses to run as root),
# listens on 127.0.0.1 only (no Unix socket in a shared place) and trusts
# local connections: it is for tests, never for data anyone keeps.
# Settings: ESCALADE_PG_PORT (default 55432), ESCALADE_PG_DIR (default
# /tmp/escalade-pg), ESCALADE_PG_DB (default escalade_test).
set -euo pipefail

PORT="${ESCALADE_PG_PORT:-55432}"
BASE="${ESCALADE_PG_DIR:-/tmp/escalade-pg}"
DB="${ESCALADE_PG_DB:-escalade_test}"
DATA="$BASE/data"
LOG="$BASE/server.log"
PGUSER_OS=postgres

die() {
  echo "postgres-for-tests: error: $*" >&2
  exit 1
}
say() { echo "postgres-for-tests: $*" >&2; }

dsn() { echo "ESCALADE_TEST_PG_DSN=postgresql://postgres@127.0.0.1:$PORT/$DB"; }

# The PostgreSQL binaries: PATH first, then the Debian layout (highest version).
find_bin_dir() {
  if command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
    dirname "$(readlink -f "$(command -v pg_ctl)")"
    return 0
  fi
  local d
  for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    if [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; then
      echo "$d"
      return 0
    fi
  done
  return 1
}

as_pg() {
  # Run a command as the postgres OS user (we are root) or as ourselves otherwise.
  if [ "$(id -u)" = 0 ]; then
    su -s /bin/sh "$PGUSER_OS" -c "$*"
  else
    sh -c "$*"
  fi
}

BIN="$(find_bin_dir || true)"
if [ -z "$BIN" ] && [ "${1:-start}" != stop ]; then
  [ "$(id -u)" = 0 ] || die "initdb/pg_ctl not found and not root: install the 'postgresql' package"
  command -v apt-get >/dev/null 2>&1 || die "initdb/pg_ctl not found and no apt-get: install PostgreSQL"
  say "installing the postgresql Debian package (apt-get)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2 || die "apt-get update failed"
  apt-get install -y -qq postgresql >&2 || die "apt-get install postgresql failed"
  BIN="$(find_bin_dir)" || die "postgresql installed but initdb/pg_ctl still not found"
fi

case "${1:-start}" in
stop)
  if [ -n "$BIN" ] && [ -f "$DATA/postmaster.pid" ]; then
    as_pg "'$BIN/pg_ctl' -D '$DATA' -m fast -w stop" >&2 || die "pg_ctl stop failed (see $LOG)"
  fi
  rm -rf "$BASE"
  say "stopped; removed $BASE"
  exit 0
  ;;
start) ;;
*) die "unknown subcommand '$1' (use: start | stop)" ;;
esac

if [ "$(id -u)" = 0 ]; then
  getent passwd "$PGUSER_OS" >/dev/null 2>&1 ||
    useradd --system --home-dir /var/lib/postgresql --shell /bin/sh "$PGUSER_OS" ||
    die "no '$PGUSER_OS' user and useradd failed"
else
  PGUSER_OS="$(id -un)"
fi

# Already running: just print the DSN.
if [ -f "$DATA/postmaster.pid" ] && as_pg "'$BIN/pg_ctl' -D '$DATA' status" >/dev/null 2>&1; then
  as_pg "'$BIN/psql' -h 127.0.0.1 -p $PORT -U postgres -d postgres -Atqc 'SELECT 1'" >/dev/null ||
    die "a server runs on $DATA but does not answer on 127.0.0.1:$PORT (see $LOG)"
  dsn
  exit 0
fi

if [ ! -f "$DATA/PG_VERSION" ]; then
  rm -rf "$BASE"
  mkdir -p "$BASE"
  chown "$PGUSER_OS" "$BASE" 2>/dev/null || true
  chmod 700 "$BASE"
  as_pg "'$BIN/initdb' -D '$DATA' -U postgres --auth=trust --encoding=UTF8 --no-locale" \
    >"$BASE/initdb.log" 2>&1 || die "initdb failed: $(tail -n 5 "$BASE/initdb.log")"
fi

# Refuse early when something else holds the port (a clear message, not a pg_ctl timeout).
if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
  die "port $PORT on 127.0.0.1 is taken by another program (set ESCALADE_PG_PORT)"
fi

OPTS="-c listen_addresses=127.0.0.1 -p $PORT -c unix_socket_directories='$BASE' -c fsync=off"
OPTS="$OPTS -c max_connections=50"
as_pg "'$BIN/pg_ctl' -D '$DATA' -l '$LOG' -w -t 30 -o \"$OPTS\" start" >&2 ||
  die "pg_ctl start failed: $(tail -n 5 "$LOG" 2>/dev/null)"

exists="$(as_pg "'$BIN/psql' -h 127.0.0.1 -p $PORT -U postgres -d postgres -Atqc \
  \"SELECT 1 FROM pg_database WHERE datname = '$DB'\"")" || die "psql cannot reach the server"
if [ "$exists" != 1 ]; then
  as_pg "'$BIN/createdb' -h 127.0.0.1 -p $PORT -U postgres '$DB'" || die "createdb $DB failed"
fi
say "running: data $DATA, log $LOG (stop: $0 stop)"
dsn

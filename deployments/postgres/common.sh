# Shared by start.sh and stop.sh: where covsweep's PostgreSQL lives and who runs it.
# shellcheck shell=bash

POSTGRES_ROOT=$(realpath -m "${COVSWEEP_CACHE_DIR:-$HOME/.cache/covsweep}/postgres")
POSTGRES_DATA=$POSTGRES_ROOT/data
POSTGRES_SOCKETS=$POSTGRES_ROOT/sockets
POSTGRES_LOG=$POSTGRES_ROOT/server.log
POSTGRES_PASSFILE=$POSTGRES_ROOT/passfile

say() { echo "postgres: $*" >&2; }
die() {
  echo "postgres: error: $1" >&2
  exit "${2:-1}"
}

# PostgreSQL refuses to run as root: root runs it as Debian's `postgres` user, anyone else as themselves.
if [[ $EUID -eq 0 ]]; then
  POSTGRES_OWNER=postgres
  # From /: the caller's directory may be one the postgres user cannot enter.
  as_owner() { (cd / && runuser -u postgres -- "$@"); }
else
  POSTGRES_OWNER=$(id -un)
  as_owner() { "$@"; }
fi

# The newest installed server: Debian keeps its programs out of PATH, in /usr/lib/postgresql/<version>/bin.
postgres_bin() {
  local found
  found=$(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin 2>/dev/null | sort -V | tail -n 1)
  if [[ -z $found ]] && command -v pg_ctl >/dev/null; then
    found=$(dirname "$(command -v pg_ctl)")
  fi
  echo "$found"
}

# The port of the running server, empty when it is not running.
running_port() {
  local bin=$1
  if [[ -d $POSTGRES_DATA ]] && as_owner "$bin/pg_ctl" status -D "$POSTGRES_DATA" >/dev/null 2>&1; then
    sed -n 4p "$POSTGRES_DATA/postmaster.pid"
  fi
}

#!/usr/bin/env bash
# `make postgres`: a PostgreSQL for the Prefect server, from Debian's packages, in
# ${COVSWEEP_CACHE_DIR:-~/.cache/covsweep}/postgres, on 127.0.0.1:${COVSWEEP_POSTGRES_PORT:-5433} only.
#
#   deployments/postgres/start.sh [DATABASE]     (default: prefect)
#
# Installs the server when it is missing, creates the cluster, starts it, and makes the role `prefect`
# and DATABASE with the pg_trgm extension Prefect's migrations need. Everything already there is left
# as it is, so it can run any number of times. Prints ONE line on stdout, for `eval "export $(...)"`:
#   PREFECT_API_DATABASE_CONNECTION_URL=postgresql+asyncpg://prefect@127.0.0.1:5433/prefect?passfile=...
# The role's password is in the passfile (mode 0600, the caller's), never printed, never in argv.
set -euo pipefail
source "$(dirname "$0")/common.sh"

DATABASE=${1:-prefect}
PORT=${COVSWEEP_POSTGRES_PORT:-5433}
ROLE=prefect
[[ $DATABASE =~ ^[a-z_][a-z0-9_]{0,62}$ ]] || die "database name '$DATABASE': lowercase letters, digits and _ only" 2
[[ $PORT =~ ^[0-9]+$ ]] && ((PORT > 0 && PORT < 65536)) || die "COVSWEEP_POSTGRES_PORT=$PORT is not a port" 2

apt_install() {
  [[ $EUID -eq 0 ]] || die "$* missing: install it with \`sudo apt-get install $*\`" 2
  say "installing $* (apt-get)"
  local apt=(apt-get install -y -q -o DPkg::Lock::Timeout=300 --no-install-recommends "$@")
  DEBIAN_FRONTEND=noninteractive "${apt[@]}" >&2 ||
    { apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive "${apt[@]}" >&2; }
}

# Debian 12 ships PostgreSQL 15, pg_trgm included in postgresql-15 (postgresql-contrib only points to it).
ensure_installed() {
  BIN=$(postgres_bin)
  if [[ -z $BIN ]] || [[ ! -f $("$BIN/pg_config" --sharedir)/extension/pg_trgm.control ]]; then
    apt_install postgresql postgresql-contrib
    BIN=$(postgres_bin)
  fi
  [[ -n $BIN ]] || die "no PostgreSQL server found after installing it"
}

# The server runs as `postgres`, which must pass through every directory above its data, e.g. /root
# (mode 0700): it gets traverse (x) only, through an ACL, and nothing else changes.
ensure_traversable() {
  [[ $POSTGRES_OWNER == "$(id -un)" ]] && return
  local dir="" part parts
  IFS=/ read -ra parts <<<"${POSTGRES_ROOT#/}"
  for part in "${parts[@]}"; do # from / down: a directory counts only once its parents are passable
    dir+=/$part
    if ! as_owner test -x "$dir"; then
      command -v setfacl >/dev/null || apt_install acl
      setfacl -m "u:$POSTGRES_OWNER:x" "$dir"
      say "gave user $POSTGRES_OWNER traverse (x) on $dir through an ACL"
    fi
  done
}

create_cluster() {
  [[ -f $POSTGRES_DATA/PG_VERSION ]] && return
  mkdir -p "$POSTGRES_DATA" "$POSTGRES_SOCKETS"
  touch "$POSTGRES_LOG"
  chown "$POSTGRES_OWNER" "$POSTGRES_DATA" "$POSTGRES_SOCKETS" "$POSTGRES_LOG"
  chmod 700 "$POSTGRES_DATA" "$POSTGRES_SOCKETS"
  say "creating a cluster in $POSTGRES_DATA"
  # Peer auth on its own socket for the superuser, a password (SCRAM) for everyone over TCP.
  as_owner "$BIN/initdb" -D "$POSTGRES_DATA" -E UTF8 --locale=C.UTF-8 \
    --auth-local=peer --auth-host=scram-sha-256 >/dev/null
  printf "\n# covsweep: this host only, and a socket directory of its own\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '%s'\n" \
    "$POSTGRES_SOCKETS" >>"$POSTGRES_DATA/postgresql.conf"
}

start_server() {
  local port
  port=$(running_port "$BIN")
  if [[ -n $port ]]; then
    [[ $port == "$PORT" ]] ||
      die "already running on port $port ($POSTGRES_DATA): \`make postgres-stop\` first, or use COVSWEEP_POSTGRES_PORT=$port" 2
    say "already running on 127.0.0.1:$PORT ($POSTGRES_DATA)"
    return
  fi
  if ! as_owner "$BIN/pg_ctl" -D "$POSTGRES_DATA" -l "$POSTGRES_LOG" -o "-p $PORT" -w -t 120 start >/dev/null; then
    tail -n 5 "$POSTGRES_LOG" >&2
    die "the server did not start on 127.0.0.1:$PORT (log: $POSTGRES_LOG)"
  fi
  say "started on 127.0.0.1:$PORT (data $POSTGRES_DATA, log $POSTGRES_LOG)"
}

admin() { as_owner "$BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$POSTGRES_SOCKETS" -p "$PORT" "$@"; }
exists() { [[ -n $(admin -d "$1" -tAc "$2") ]]; }

# The password goes to psql on stdin, and no failing statement is logged with it.
set_password() {
  local verb=$1 password
  password=$(cut -d: -f5 "$POSTGRES_PASSFILE")
  admin -d postgres <<<"SET log_min_error_statement = panic; $verb ROLE $ROLE LOGIN PASSWORD '$password';"
}

provision() {
  local new_password=false
  if [[ ! -s $POSTGRES_PASSFILE ]]; then
    (umask 077 && echo "127.0.0.1:*:*:$ROLE:$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')" >"$POSTGRES_PASSFILE")
    new_password=true
  fi
  if ! exists postgres "SELECT 1 FROM pg_roles WHERE rolname = '$ROLE'"; then
    set_password CREATE
    say "created role $ROLE (password in $POSTGRES_PASSFILE)"
  elif $new_password; then
    set_password ALTER
    say "new password for role $ROLE in $POSTGRES_PASSFILE"
  fi
  if ! exists postgres "SELECT 1 FROM pg_database WHERE datname = '$DATABASE'"; then
    admin -d postgres -c "CREATE DATABASE $DATABASE OWNER $ROLE"
    say "created database $DATABASE"
  fi
  if ! exists "$DATABASE" "SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm'"; then
    admin -d "$DATABASE" -c "CREATE EXTENSION pg_trgm"
    say "created extension pg_trgm in $DATABASE"
  fi
}

# The passfile's path as a URL query value: every byte but [A-Za-z0-9/._~-] percent-encoded.
url_path() {
  local LC_ALL=C text=$1 out="" char i
  for ((i = 0; i < ${#text}; i++)); do
    char=${text:i:1}
    if [[ $char =~ [A-Za-z0-9/._~-] ]]; then out+=$char; else out+=$(printf '%%%02X' "'$char"); fi
  done
  echo "$out"
}

ensure_installed
mkdir -p "$POSTGRES_ROOT"
ensure_traversable
create_cluster
start_server
provision
echo "PREFECT_API_DATABASE_CONNECTION_URL=postgresql+asyncpg://$ROLE@127.0.0.1:$PORT/$DATABASE?passfile=$(url_path "$POSTGRES_PASSFILE")"

#!/usr/bin/env bash
# `make postgres-stop`: stops the PostgreSQL that start.sh started; its data stays for the next start.
set -euo pipefail
source "$(dirname "$0")/common.sh"

BIN=$(postgres_bin)
if [[ -z $BIN ]] || [[ -z $(running_port "$BIN") ]]; then
  say "not running ($POSTGRES_DATA)"
  exit 0
fi
as_owner "$BIN/pg_ctl" -D "$POSTGRES_DATA" -m fast -w -t 120 stop >/dev/null
say "stopped ($POSTGRES_DATA)"

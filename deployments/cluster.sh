#!/usr/bin/env bash
# `make cluster` / `make cluster-stop`: a Dask scheduler and DASK_WORKERS workers on this machine, in the
# background, with pid files and logs in CLUSTER_DIR. Starting again leaves what runs as it is.
#   deployments/cluster.sh start|stop|status
# Each worker is the venv's `dask worker` (covsweep importable), with a nanny that restarts its process if
# it dies; it runs module tasks in DASK_THREADS threads, with this shell's environment (the LLM key).
set -euo pipefail

VENV=${VENV:-.venv}
DIR=${CLUSTER_DIR:-${COVSWEEP_CACHE_DIR:-$HOME/.cache/covsweep}/cluster}
HOST=${DASK_HOST:-127.0.0.1}
PORT=${DASK_PORT:-8786}
WORKERS=${DASK_WORKERS:-2}
THREADS=${DASK_THREADS:-2}
ADDRESS="tcp://$HOST:$PORT"

running() { [[ -f $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

# name, command...: started in a session of its own (its pid is its group), unless its pid file names a live one.
start_one() {
  local name=$1
  shift
  if running "$DIR/$name.pid"; then
    echo "$name: running (pid $(cat "$DIR/$name.pid"))"
    return
  fi
  setsid nohup "$@" >>"$DIR/$name.log" 2>&1 </dev/null &
  echo $! >"$DIR/$name.pid"
  echo "$name: started (pid $!), log $DIR/$name.log"
}

stop_one() {
  local pidfile=$1 name pid
  name=$(basename "$pidfile" .pid)
  pid=$(cat "$pidfile")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid"
    for _ in $(seq 1 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -KILL -- "-$pid" 2>/dev/null || true
    echo "$name: stopped"
  fi
  rm -f "$pidfile"
}

listening() { (exec 3<>"/dev/tcp/$HOST/$PORT") 2>/dev/null; }

start() {
  mkdir -p "$DIR"
  start_one scheduler "$VENV/bin/dask" scheduler --host "$HOST" --port "$PORT" --no-dashboard
  for _ in $(seq 1 60); do listening && break; sleep 1; done
  listening || { echo "cluster: the scheduler does not listen on $ADDRESS: see $DIR/scheduler.log" >&2; exit 1; }
  for n in $(seq 1 "$WORKERS"); do
    start_one "worker-$n" "$VENV/bin/dask" worker "$ADDRESS" --name "$(hostname)-$n" --nthreads "$THREADS" \
      --no-dashboard --local-directory "$DIR/worker-$n"
  done
  "$VENV/bin/python" -c "from distributed import Client
with Client('$ADDRESS', timeout=30) as c:
    c.wait_for_workers($WORKERS, timeout=180)
    print('cluster: $ADDRESS,', len(c.scheduler_info(n_workers=-1)['workers']), 'workers')"
  echo "use it: covsweep run TARGET --cluster $ADDRESS (or COVSWEEP_CLUSTER=$ADDRESS); stop it: make cluster-stop"
}

stop() {
  shopt -s nullglob
  for pidfile in "$DIR"/worker-*.pid "$DIR"/scheduler.pid; do stop_one "$pidfile"; done
}

status() {
  shopt -s nullglob
  for pidfile in "$DIR"/*.pid; do
    if running "$pidfile"; then state=running; else state=dead; fi
    echo "$(basename "$pidfile" .pid): $state (pid $(cat "$pidfile"))"
  done
}

case ${1:-} in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac

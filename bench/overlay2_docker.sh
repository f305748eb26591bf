#!/bin/sh
# A second Docker daemon with the overlay2 storage driver, on a socket of its own, holding copies of
# covsweep's images: the sandbox measured without fuse-overlayfs (README, Benchmarks), e.g.
#   DOCKER_HOST=unix:///run/covsweep-overlay2.sock .venv/bin/python bench/run.py --modules 400
# Needs root and a kernel with overlayfs. `bench/overlay2_docker.sh stop` ends it; its data stays in
# /var/lib/covsweep-overlay2 for the next start.
set -eu
SOCK=/run/covsweep-overlay2.sock
PIDFILE=/run/covsweep-overlay2.pid
ROOT=/var/lib/covsweep-overlay2
# A bridge of its own: with `--bridge none` dockerd deletes docker0, which the machine's daemon needs.
BRIDGE=cvs-overlay2

if [ "${1:-start}" = stop ]; then
  if [ -f "$PIDFILE" ]; then
    pid=$(cat "$PIDFILE")
    kill "$pid"
    while kill -0 "$pid" 2>/dev/null; do sleep 0.2; done
    echo "overlay2 dockerd stopped"
  fi
  ip link delete "$BRIDGE" 2>/dev/null || true
  exit 0
fi
if ! DOCKER_HOST="unix://$SOCK" docker info >/dev/null 2>&1; then
  mkdir -p "$ROOT/data" "$ROOT/exec"
  if ! ip link show "$BRIDGE" >/dev/null 2>&1; then
    ip link add name "$BRIDGE" type bridge
    ip addr add 172.31.253.1/24 dev "$BRIDGE"
    ip link set "$BRIDGE" up
  fi
  # A config file of its own: flags that /etc/docker/daemon.json also sets would be refused.
  printf '{"data-root": "%s/data", "storage-driver": "overlay2"}\n' "$ROOT" > "$ROOT/daemon.json"
  dockerd --config-file "$ROOT/daemon.json" -H "unix://$SOCK" --pidfile "$PIDFILE" --exec-root "$ROOT/exec" \
    --bridge "$BRIDGE" --iptables=false --ip6tables=false >"$ROOT/dockerd.log" 2>&1 &
  for _ in $(seq 30); do DOCKER_HOST="unix://$SOCK" docker info >/dev/null 2>&1 && break; sleep 1; done
fi
driver=$(DOCKER_HOST="unix://$SOCK" docker info --format '{{.Driver}}' 2>/dev/null || true)
[ "$driver" = overlay2 ] || { echo "no overlay2 dockerd on $SOCK: see $ROOT/dockerd.log" >&2; exit 1; }
# From the machine's own daemon, whatever DOCKER_HOST says; the sandbox's tag hashes its base, so both
# bases are copied (tasks/sandbox/images.py prefers python:3.11-slim when it is there).
for image in $(env -u DOCKER_HOST docker images --format '{{.Repository}}:{{.Tag}}' \
  | grep -E '^(covsweep-(base|sandbox)|python):'); do
  DOCKER_HOST="unix://$SOCK" docker image inspect "$image" >/dev/null 2>&1 \
    || env -u DOCKER_HOST docker save "$image" | DOCKER_HOST="unix://$SOCK" docker load -q
done
echo "overlay2 dockerd: DOCKER_HOST=unix://$SOCK"

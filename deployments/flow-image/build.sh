#!/usr/bin/env bash
# Builds covsweep-flow:latest, the Docker work pool's image, without a container registry:
# wheels are built and downloaded on this host, the build itself has no network.
set -euo pipefail
cd "$(dirname "$0")/../.."
name="${1:-covsweep-flow:latest}"
python="${PYTHON:-.venv/bin/python}"
base=python:3.11-slim
docker image inspect "$base" >/dev/null 2>&1 || base=covsweep-base:bookworm
context=$(mktemp -d /var/tmp/covsweep-flow.XXXXXX)
trap 'rm -rf "$context"' EXIT
"$python" -m pip wheel -q --wheel-dir "$context/wheelhouse" .
# Debian's Python is 3.11.2: redis then also needs async-timeout, which a newer host Python skips.
"$python" -m pip download -q --no-deps --only-binary=:all: -d "$context/wheelhouse" 'async-timeout>=4.0.3'
mkdir "$context/src"
tar --exclude=./.venv --exclude=./.git --exclude=./build --exclude='*.egg-info' --exclude=__pycache__ \
    --exclude=./.pytest_cache --exclude=./bench/results -c . | tar -x -C "$context/src"
cp deployments/flow-image/Dockerfile "$context/"
docker build -q --network none --build-arg "BASE=$base" -t "$name" "$context" >/dev/null
echo "image $name built on $base"

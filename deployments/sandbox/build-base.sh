#!/usr/bin/env bash
# Builds the sandbox's base image without a container registry: a minimal Debian
# bookworm root filesystem from this machine's apt mirror, imported into Docker.
set -euo pipefail
name="${1:-covsweep-base:bookworm}"
if docker image inspect "$name" >/dev/null 2>&1; then
  echo "base image $name present"; exit 0
fi
command -v debootstrap >/dev/null || { apt-get update -qq && apt-get install -y -qq debootstrap >/dev/null; }
# The mirror this machine's apt already uses: no other host is reachable.
mirror=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/* 2>/dev/null \
  | grep -E '^(URIs:|deb )' | grep -oE 'https?://[^ ]*/debian/?' | grep -v security | head -n 1 || true)
mirror="${mirror:-http://deb.debian.org/debian}"
rootfs=$(mktemp -d /var/tmp/covsweep-rootfs.XXXXXX)
trap 'rm -rf "$rootfs"' EXIT
echo "debootstrap bookworm from $mirror (about a minute)"
debootstrap --variant=minbase --include=python3,python3-venv bookworm "$rootfs" "$mirror" >/dev/null
rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
tar -C "$rootfs" -c . | docker import - "$name" >/dev/null
echo "base image $name built"

#!/usr/bin/env bash
# Makes the local base image localhost/debian-py:bookworm (Debian bookworm with Python 3.11,
# venv, pip, CA certificates, curl) from Debian packages with debootstrap, for machines
# that reach no container registry, and the podman configuration that works here
# (runc, cgroupfs, file events, ulimits within this machine's hard limits).
#
# The root file system is made once and cached as a tarball under
# ~/.cache/rollout-dashboard/containers/ (about 60 s the first time); later runs only
# `podman import` it when the image is missing, or do nothing. Idempotent.
#
# Prints the path of the podman configuration on its last line: use it as
#   CONTAINERS_CONF="$(scripts/container-base.sh | tail -n 1)" podman build ...
# and pass the image with --build-arg BASE_IMAGE=localhost/debian-py:bookworm.
set -euo pipefail

image="${BASE_IMAGE_NAME:-localhost/debian-py:bookworm}"
cache="${ROLLOUT_CACHE_DIR:-$HOME/.cache/rollout-dashboard}/containers"
tarball="$cache/debian-py-bookworm.tar"
conf="$cache/containers.conf"
mkdir -p "$cache"

if [ ! -s "$conf" ]; then
  files="$(ulimit -Hn)"; procs="$(ulimit -Hu)"
  [ "$files" = unlimited ] && files=65536
  [ "$procs" = unlimited ] && procs=32768
  [ "$files" -gt 65536 ] && files=65536
  [ "$procs" -gt 32768 ] && procs=32768
  cat >"$conf.tmp" <<CONF
[containers]
default_ulimits = ["nofile=$files:$files", "nproc=$procs:$procs"]

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
CONF
  mv "$conf.tmp" "$conf"
fi
export CONTAINERS_CONF="$conf"

if ! podman image exists "$image"; then
  if [ ! -s "$tarball" ]; then
    mirror="$(awk '/^URIs:/ && $2 ~ /\/debian$/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)"
    mirror="${mirror:-http://deb.debian.org/debian}"
    rootfs="$(mktemp -d "$cache/rootfs.XXXXXX")"
    trap 'rm -rf "$rootfs"' EXIT
    echo "making the base image's root file system with debootstrap from $mirror (about 60 s)" >&2
    debootstrap --variant=minbase \
      --include=python3,python3-venv,python3-pip,ca-certificates,curl \
      bookworm "$rootfs" "$mirror" >"$cache/debootstrap.log" 2>&1 \
      || { tail -n 20 "$cache/debootstrap.log" >&2; exit 1; }
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
    tar -C "$rootfs" -cf "$tarball.tmp" .
    mv "$tarball.tmp" "$tarball"
  fi
  podman import --quiet "$tarball" "$image" >/dev/null
fi
echo "$conf"

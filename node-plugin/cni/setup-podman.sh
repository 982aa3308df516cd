#!/usr/bin/env bash
# Points the machine's podman at its CNI backend and runc with the ulimits this sandbox allows, and imports a
# busybox image, for trying podvnet-cni by hand (the tests need none of this: podman.test.ts uses its own
# CONTAINERS_CONF and storage). Idempotent. Needs root, podman and busybox-static.
set -euo pipefail
conf=/etc/containers/containers.conf
mkdir -p /etc/containers
touch "$conf"
ensure() { # ensure <section> <key> <value>
  local section=$1 key=$2 value=$3
  if grep -qE "^[[:space:]]*${key}[[:space:]]*=" "$conf"; then
    sed -i -E "s|^[[:space:]]*${key}[[:space:]]*=.*|${key} = ${value}|" "$conf"
  elif grep -q "^\[${section}\]" "$conf"; then
    sed -i "/^\[${section}\]/a ${key} = ${value}" "$conf"
  else
    printf '\n[%s]\n%s = %s\n' "$section" "$key" "$value" >> "$conf"
  fi
}
ensure containers default_ulimits '["nofile=4096:4096", "nproc=4096:4096"]'
ensure network network_backend '"cni"'
# runc, not crun: crun refuses hybrid-cgroup machines (cgroup v1 controllers under /sys/fs/cgroup and a
# cgroup2 mount with a controller left on it: "cgroups in hybrid mode not supported"); docker.io brings runc
ensure engine runtime '"runc"'
if ! podman image exists localhost/busybox; then
  root=$(mktemp -d); trap 'rm -rf "$root"' EXIT
  mkdir -p "$root/bin" && cp /bin/busybox "$root/bin/" && ln -s busybox "$root/bin/sh"
  tar -C "$root" -c . | podman import - localhost/busybox >/dev/null
fi
echo "podman: CNI backend configured in $conf; image localhost/busybox ready"

#!/usr/bin/env bash
# Builds the Docker managed plugin's directory from this machine, no registry and no base image:
#   <out>/config.json   (hack/docker-plugin/config.json)
#   <out>/rootfs/       node, the compiled agent (/app/dist) with the datapath's netlink helper, its production node_modules, and what the
#                       datapath execs (ip, iptables-nft/-legacy, nsenter, flock, dash, coreutils), with their
#                       shared libraries.
# Then: docker plugin create podvnet/azure-vnet <out> && docker plugin enable podvnet/azure-vnet
#
#   bash hack/docker-plugin/build-rootfs.sh <out-dir>
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
out=${1:?usage: build-rootfs.sh <out-dir>}
rootfs="$out/rootfs"
rm -rf "$out"
mkdir -p "$rootfs/app" "$rootfs/bin" "$rootfs/tmp" "$rootfs/run" "$rootfs/var/lib/podvnet" "$rootfs/host/proc/sys/net" "$rootfs/etc"
cp "$repo/hack/docker-plugin/config.json" "$out/config.json"

# The agent, compiled as the production image compiles it (type errors are caught by `npm run typecheck`).
(cd "$repo" && npx tsc -p tsconfig.json --outDir "$rootfs/app/dist" --noEmitOnError false --sourceMap false --declaration false >/dev/null || true)
test -f "$rootfs/app/dist/node-plugin/agent/main.js" || { echo "build-rootfs: tsc produced no agent" >&2; exit 1; }
# The datapath's netlink helper, beside its module where exec.ts looks for it (static when libc.a is
# present; else it needs only libc, which node and ip bring below).
make -s -C "$repo/node-plugin/datapath/netlink"
install -D -m 0755 "$repo/node-plugin/datapath/netlink/bin/podvnet-netlink" "$rootfs/app/dist/node-plugin/datapath/netlink/bin/podvnet-netlink"
cp "$repo/package.json" "$rootfs/app/"
# Production dependencies only: each top-level package (nested ones come inside their parent).
nm=$(readlink -f "$repo/node_modules")
(cd "$repo" && npm ls --omit=dev --all --parseable 2>/dev/null) | while read -r dir; do
  case "$dir" in */node_modules/*) ;; *) continue ;; esac
  rest=${dir#*/node_modules/}
  case "$rest" in */node_modules/*) continue ;; esac
  [ -e "$rootfs/app/node_modules/$rest" ] && continue
  mkdir -p "$rootfs/app/node_modules/$(dirname "$rest")"
  cp -a "$nm/$rest" "$rootfs/app/node_modules/$rest"
done || true

# Executables and the libraries they load.
copy_with_libs() {
  local bin=$1 real
  real=$(readlink -f "$bin")
  mkdir -p "$rootfs$(dirname "$bin")"
  cp -a "$real" "$rootfs$(dirname "$bin")/$(basename "$real")"
  [ "$(basename "$real")" = "$(basename "$bin")" ] || ln -sf "$(basename "$real")" "$rootfs$bin"
  ldd "$real" 2>/dev/null | awk '/=>/ {print $3} /^\t\/lib/ {print $1}' | while read -r lib; do
    [ -n "$lib" ] && [ -e "$lib" ] || continue
    mkdir -p "$rootfs$(dirname "$lib")"
    cp -aL "$lib" "$rootfs$lib"
  done
  return 0
}
for b in /usr/bin/node /usr/sbin/ip /usr/bin/nsenter /usr/bin/flock /usr/bin/unshare /usr/sbin/xtables-nft-multi /usr/sbin/xtables-legacy-multi; do copy_with_libs "$b"; done
for l in iptables-nft iptables-nft-restore iptables-nft-save; do ln -sf xtables-nft-multi "$rootfs/usr/sbin/$l"; done
for l in iptables-legacy iptables-legacy-restore iptables-legacy-save; do ln -sf xtables-legacy-multi "$rootfs/usr/sbin/$l"; done
ln -sf xtables-nft-multi "$rootfs/usr/sbin/iptables"
ln -sf xtables-nft-multi "$rootfs/usr/sbin/iptables-restore"
mkdir -p "$rootfs/usr/lib/x86_64-linux-gnu"
cp -a /usr/lib/x86_64-linux-gnu/xtables "$rootfs/usr/lib/x86_64-linux-gnu/"
for lib in /usr/lib/x86_64-linux-gnu/xtables/*.so; do
  ldd "$lib" 2>/dev/null | awk '/=>/ {print $3}' | while read -r dep; do [ -e "$rootfs$dep" ] || { mkdir -p "$rootfs$(dirname "$dep")"; cp -aL "$dep" "$rootfs$dep"; }; done || true
done
# A plain POSIX shell (dash) and coreutils, not busybox: busybox's sh runs its own `ip` applet before PATH.
for b in /bin/dash /usr/bin/tee /usr/bin/cat /usr/bin/grep /usr/bin/true /usr/bin/printf /usr/bin/mkdir; do copy_with_libs "$b"; done
ln -sf dash "$rootfs/bin/sh"
for b in tee cat grep true printf mkdir; do [ -e "$rootfs/bin/$b" ] || ln -sf "/usr/bin/$b" "$rootfs/bin/$b"; done
echo 'root:x:0:0:root:/root:/bin/sh' > "$rootfs/etc/passwd"
echo "build-rootfs: $(du -sh "$rootfs" | cut -f1) in $rootfs"

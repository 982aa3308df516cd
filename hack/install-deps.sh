#!/usr/bin/env bash
# Installs everything PodVNet needs on a fresh Debian 12 machine (as root): the kernel tools the datapath
# drives, the real container runtimes the tests use, and the npm dependencies. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  iproute2 iptables ebtables kmod procps      # datapath: netlink via ip, SNAT, MAC/ARP rules, modprobe, sysctl
  containernetworking-plugins                 # reference bridge/host-local to compare against, portmap to chain
  podman docker.io runc busybox-static        # real runtimes driving the CNI plugin and the CNM driver (runc:
                                              # podman runs it, crun refuses hybrid-cgroup machines)
  lua5.1                                      # runs the Argo CD health check as Argo CD does
  debootstrap                                 # the image's Debian base (hack/image/build.sh), no registry needed
  gcc libc6-dev make                          # builds the per-pod CNI forwarder and the netlink helper
  openssl ca-certificates jq util-linux socat  # emulator certificates, nsenter/flock, traffic probes
  prometheus                                  # promtool and a real Prometheus: the alert rules and dashboard tests
)

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done
if ((${#missing[@]})); then
  echo "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# kubectl: machines here ship one at /usr/bin/kubectl; elsewhere Debian's kubernetes-client is the fallback
# (too old for kustomize v5: the deploy tests say so by name when they meet it).
if ! command -v kubectl >/dev/null; then
  echo "kubectl not found: installing Debian's kubernetes-client"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq kubernetes-client >/dev/null
fi

if ! command -v node >/dev/null || ! node -e 'const [a,b]=process.versions.node.split(".").map(Number);process.exit(a>20||(a===20&&b>=19)?0:1)'; then
  echo "Node.js >= 20.19 is required (found: $(node --version 2>/dev/null || echo none))" >&2
  exit 1
fi

if [ -L node_modules ]; then
  # A worktree sharing another checkout's node_modules: npm ci would empty the shared directory (it
  # follows the link) and leave every other user of it without dependencies until it finishes.
  if [ package-lock.json -nt node_modules/.package-lock.json ] && ! cmp -s package-lock.json "$(readlink -f node_modules)/.package-lock.json"; then
    echo "node_modules links to $(readlink node_modules): not reinstalling it here; run npm ci where it lives if package-lock.json changed" >&2
  fi
elif [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund --loglevel=error
fi

if [ -f node-plugin/cni/Makefile ]; then make -s -C node-plugin/cni; fi
if [ -f node-plugin/datapath/netlink/Makefile ]; then make -s -C node-plugin/datapath/netlink; fi

#!/usr/bin/env bash
# The main job on the embedded default: the local sandbox (emulated Azure and API server, the real
# controller, node agents and datapath on simulated VMs, compiled by `npm run build`). Installs what it needs first. Run as root.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then echo "run as root (the sandbox makes network namespaces): sudo bash hack/sandbox.sh" >&2; exit 1; fi
bash hack/install-deps.sh
npm run -s build   # the sandbox runs the compiled controller and agents (dist/), as production does
# --docker: the seed's plain Docker host (standalone agent, real dockerd), no Kubernetes.
for a in "$@"; do
  if [ "$a" = --docker ]; then exec node --loader ts-node/esm --no-warnings hack/sandbox/docker.ts "$@"; fi
done
exec node --loader ts-node/esm --no-warnings hack/sandbox/main.ts "$@"

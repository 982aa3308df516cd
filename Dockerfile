# PodVNet image: the controller, the node agent, the CNI installer and the podvnet-cni binary.
#   docker build -t ghcr.io/podvnet/podvnet:v0.1.0 .
# Commands (set by deploy/base): node /app/dist/controllers/main.js, node --max-semi-space-size=1 /app/dist/node-plugin/agent/main.js,
# node /app/dist/deploy/cni-install/main.js; the CNI plugin the installer copies is /app/bin/podvnet-cni.

FROM node:20-bookworm-slim AS build
RUN apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev make && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci
COPY tsconfig.json ./
COPY crds crds
COPY controllers controllers
COPY node-plugin node-plugin
COPY hack hack
COPY e2e e2e
COPY deploy deploy
# Emit JavaScript even if a type error slips in elsewhere in the tree; `npm run typecheck` guards types.
# (One tsconfig covers deploy/ too.)
RUN npx tsc -p tsconfig.json --outDir dist --noEmitOnError false --sourceMap false \
 && make -C node-plugin/cni

FROM node:20-bookworm-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev

FROM node:20-bookworm-slim
# What the node agent runs: ip (iproute2), iptables, nsenter (util-linux); modprobe (kmod) for the DaemonSet's
# load-br-netfilter init container. Sysctls are written as files (sh, tee and grep come with the base image).
RUN apt-get update && apt-get install -y --no-install-recommends iproute2 iptables util-linux kmod \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json ./
COPY --from=deps /app/node_modules node_modules
COPY --from=build /src/dist dist
COPY --from=build /src/node-plugin/cni/bin/podvnet-cni bin/podvnet-cni
ENV NODE_ENV=production
# The controller overrides this with runAsUser 65532; the agent and the installer run as root.
CMD ["node", "/app/dist/controllers/main.js"]

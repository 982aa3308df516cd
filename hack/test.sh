#!/usr/bin/env bash
# Runs every PodVNet test (unit, emulator, netns, podman, docker) after installing what they need.
# Must run as root: the datapath tests make network namespaces, bridges and iptables rules.
# Output is AVA's TAP stream; the last line counts it: "N passed, M failed".
set -uo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then echo "run as root (the datapath tests need it): sudo bash hack/test.sh" >&2; exit 1; fi
bash hack/install-deps.sh || { echo "0 passed, 1 failed"; exit 1; }

typecheck_failed=0
npx tsc --noEmit -p . || { echo "typecheck: FAILED (see above)" >&2; typecheck_failed=1; }
# the production build (dist/): what the image ships and the sandbox, e2e and benchmarks run
npm run -s build || { echo "build: FAILED (see above)" >&2; typecheck_failed=$((typecheck_failed + 1)); }

tap=$(mktemp)
trap 'rm -f "$tap"' EXIT
npx ava --tap 2>&1 | tee "$tap"
status=${PIPESTATUS[0]}

passed=$(grep -cE '^ok [0-9]+' "$tap" | tr -d ' ')
skipped=$(grep -cE '^ok [0-9]+ .*# SKIP' "$tap" | tr -d ' ')
failed=$(grep -cE '^not ok [0-9]+' "$tap" | tr -d ' ')
passed=$((passed - skipped))
if [ "$status" != 0 ] && [ "$failed" = 0 ]; then failed=1; fi   # AVA itself failed (a crash, a timeout)
failed=$((failed + typecheck_failed))
echo "${passed} passed, ${failed} failed, ${skipped} skipped"
[ "$failed" = 0 ]

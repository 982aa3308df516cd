#!/usr/bin/env bash
# Runs every PodVNet test (unit, emulator, netns, podman, docker) after installing what they need.
# Must run as root: the datapath tests make network namespaces, bridges and iptables rules.
# Before the tests: the typecheck, the lint and the production build; each failing one counts as a failure.
# Output is AVA's TAP stream; the last line counts it: "N passed, M failed, K skipped" (hack/count-tap.sh;
# with CI=true a skip fails the run unless its reason is registered in hack/ci-allowed-skips.txt).
set -uo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then echo "run as root (the datapath tests need it): sudo bash hack/test.sh" >&2; exit 1; fi
bash hack/install-deps.sh || { echo "0 passed, 1 failed, 0 skipped"; exit 1; }

typecheck_failed=0
npx tsc --noEmit -p . || { echo "typecheck: FAILED (see above)" >&2; typecheck_failed=1; }
# typescript-eslint (eslint.config.js): unused names, stray `any` in production code, `this` aliases
npx eslint --max-warnings 0 . || { echo "lint: FAILED (see above)" >&2; typecheck_failed=$((typecheck_failed + 1)); }
# the production build (dist/): what the image ships and the sandbox, e2e and benchmarks run
npm run -s build || { echo "build: FAILED (see above)" >&2; typecheck_failed=$((typecheck_failed + 1)); }

tap=$(mktemp)
trap 'rm -f "$tap"' EXIT
npx ava --tap 2>&1 | tee "$tap"
status=${PIPESTATUS[0]}

bash hack/count-tap.sh "$tap" "$status" "$typecheck_failed"

#!/usr/bin/env bash
# The whole test suite: Rust engine tests, the type test, and the JS suite against the built
# addon (debug build). Installs and builds whatever is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh debug
cargo test --workspace
npx tsc -p __test__/tsconfig.json
echo "type test: index.d.ts compiles against __test__/types.ts"
# Node's own runner last: its closing lines count the JS tests. Every test has a timeout (its
# own, or 2 minutes), the runner exits once the tests are done even if something keeps Node
# alive (a lost job, a leaked handle), and the whole JS run is bounded: a hang fails the suite
# in minutes, never holds it for hours.
timeout --kill-after=30 900 \
  node --test --test-concurrency=2 --test-timeout=120000 --test-force-exit __test__/*.test.mjs

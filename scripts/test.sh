#!/usr/bin/env bash
# The whole test suite: Rust engine tests, the type test, and the JS suite against the built
# addon (debug build). Installs and builds whatever is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh debug
cargo test --workspace
npx tsc -p __test__/tsconfig.json
echo "type test: index.d.ts compiles against __test__/types.ts"
# Node's own runner last: its closing lines count the JS tests.
node --test --test-concurrency=2 __test__/*.test.mjs

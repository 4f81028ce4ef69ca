#!/usr/bin/env bash
# Builds the release addon, then runs the benchmark against compute-cluster
# and bare child_process.fork. Arguments go to the benchmark, e.g.
#   scripts/bench.sh --rounds 5 --json bench-results.json
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh release
node bench/compute-cluster.js "$@"

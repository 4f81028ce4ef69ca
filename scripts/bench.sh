#!/usr/bin/env bash
# Builds the release addon and the Rust example worker, then runs every benchmark:
#   bench/compute-cluster.js  ComputeCluster vs compute-cluster and bare fork
#   bench/pool.js             Pool (Node and Rust workers) vs bare pipelined fork, workerpool, piscina
#   bench/responsiveness.js   the parent's event-loop delay with the pool saturated
#   bench/soak.js             one million jobs: throughput and the parent's memory
#   bench/binary.js           a 1 MiB Buffer echo: Pool vs fork 'advanced', piscina, a raw socketpair
#   bench/binary-rss.js       the parent's peak memory for a 64 MiB Buffer each way
#   bench/redis-bullmq.js     one queue on Redis against BullMQ (when redis-server is installed)
# Arguments go to the first two, e.g. scripts/bench.sh --rounds 5 --json bench-results.json
# (bench/pool.js then writes bench-results.pool.json).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh release
cargo build --release -p comrade-worker --examples
node bench/compute-cluster.js "$@"
node bench/pool.js --json-suffix .pool "$@"
node bench/responsiveness.js
node --expose-gc bench/soak.js
node bench/binary.js
node --expose-gc bench/binary-rss.js
if command -v redis-server >/dev/null; then
  node bench/redis-bullmq.js
else
  echo "bench/redis-bullmq.js skipped: no redis-server (Debian: apt-get install redis-server)"
fi

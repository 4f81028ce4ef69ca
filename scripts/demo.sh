#!/usr/bin/env bash
# Builds the release addon, then runs the Express demo: a CPU-heavy route on
# the comrade pool versus inline on the event loop. Arguments go to the demo.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh release
node examples/demo.js "$@"

#!/usr/bin/env bash
# Installs the npm dependencies (if missing) and builds the native addon.
# Usage: scripts/build.sh [debug|release]   (default: debug)
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-debug}
if [ ! -x node_modules/.bin/napi ]; then
  # Exactly what package-lock.json says (it must match package.json, or npm ci fails).
  npm ci --no-audit --no-fund
fi
if [ "$mode" = release ]; then
  npx napi build --platform --release --js binding.js --dts binding.d.ts
else
  npx napi build --platform --js binding.js --dts binding.d.ts
fi

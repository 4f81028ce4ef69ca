#!/usr/bin/env bash
# The package as a user gets it: `npm pack`, then the tarball installed with express into a
# fresh folder outside the checkout, and a job run through ComputeCluster and Pool behind an
# Express route, from CommonJS and from ESM. Also checks what the tarball holds (and that the
# README points only at files that ship). Needs the addon built (scripts/build.sh) and the
# package registry for express. Usage: scripts/pack-check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
work=$(mktemp -d "${TMPDIR:-/tmp}/comrade-pack-check.XXXXXX")
trap 'rm -rf "$work"' EXIT

npm pack --silent --pack-destination "$work" --json > "$work/pack.json"
tarball=$(node -e 'const p = require(process.argv[1])[0]; console.log(p.filename)' "$work/pack.json")
echo "pack-check: packed $tarball"

# What ships: the entry points, the addon, the docs; nothing of the repository's development.
node - "$work/pack.json" "$root" <<'JS'
const fs = require('node:fs');
const path = require('node:path');
const [packJson, root] = process.argv.slice(2);
const files = new Set(require(packJson)[0].files.map((f) => f.path));
const fail = (m) => { console.error(`pack-check: ${m}`); process.exitCode = 1; };
for (const f of ['package.json', 'README.md', 'LICENSE', 'index.js', 'index.d.ts', 'worker.js',
  'worker.d.ts', 'compute-cluster.js', 'compute-cluster.d.ts', 'binding.js', 'binding.d.ts',
  'lib/native.js', 'docs/PROTOCOL.md', 'comrade.linux-x64-gnu.node']) {
  if (!files.has(f)) fail(`the tarball lacks ${f}`);
}
// Every file an export condition names ships (index.mjs and the others, once they exist).
const walk = (v) => (typeof v === 'string' ? [v] : Object.values(v).flatMap(walk));
for (const target of walk(require(path.join(root, 'package.json')).exports)) {
  if (!files.has(path.posix.normalize(target))) fail(`package.json exports ${target}, which does not ship`);
}
for (const f of files) {
  if (/^(__test__|src|crates|target|bench|fuzz|scripts|npm|\.ci)\//.test(f) || f === 'DEVELOPING.md' || f === 'Cargo.toml') {
    fail(`the tarball holds a development file: ${f}`);
  }
}
// The README points only at files that ship: every relative link, and every path in
// backquotes that names a file or folder of the repository, unless its line says that it
// is in the source repository.
const readme = fs.readFileSync(path.join(root, 'README.md'), 'utf8');
const shipped = (p) => files.has(p) || [...files].some((f) => f.startsWith(p.replace(/\/?$/, '/')));
readme.split('\n').forEach((line, i) => {
  for (const [, link] of line.matchAll(/\]\(([^)#\s]+)(?:#[^)]*)?\)/g)) {
    if (/^[a-z]+:/i.test(link)) continue;
    if (!shipped(path.posix.normalize(link))) fail(`README.md:${i + 1} links ${link}, which does not ship`);
  }
  if (/source repository/.test(line)) return;
  for (const [, p] of line.matchAll(/`([A-Za-z0-9_.-]+\/[A-Za-z0-9_./-]*)`/g)) {
    if (p.startsWith('comrade-pool/')) continue;
    if (fs.existsSync(path.join(root, p)) && !shipped(p.replace(/\/$/, ''))) {
      fail(`README.md:${i + 1} points at ${p}, which does not ship`);
    }
  }
});
if (!process.exitCode) console.log(`pack-check: ${files.size} files, the README points only at shipped files`);
JS

app="$work/app"
mkdir "$app"
cd "$app"
cat > package.json <<'JSON'
{ "name": "pack-check-app", "version": "1.0.0", "private": true }
JSON
npm install --no-audit --no-fund --loglevel=error "$work/$tarball" express@5

cat > tasks.js <<'JS'
'use strict';
const { progress } = require('comrade-pool/worker');
module.exports = {
  double(n) { progress(n); return n * 2; },
  pid() { return process.pid; },
};
JS
cat > tasks.mjs <<'JS'
import worker from 'comrade-pool/worker';
export function double(n) { worker.progress(n); return n * 2; }
JS
cat > cc-worker.js <<'JS'
process.on('message', (m) => process.send({ n: m.n, twice: m.n * 2 }));
JS

# One script body for both module systems: an Express app whose routes run a job through
# ComputeCluster (both import styles) and Pool, each asked over HTTP on 127.0.0.1.
body='
const path = require("node:path");
async function main(dir, label) {
  const cc = new ComputeCluster({ module: path.join(dir, "cc-worker.js"), max_processes: 1 });
  const cc2 = computecluster({ module: path.join(dir, "cc-worker.js"), max_processes: 1 });
  const pool = new Pool({ module: path.join(dir, POOL_MODULE), maxWorkers: 1 });
  const app = express();
  const viaCc = (c) => (req, res) => c.enqueue({ n: Number(req.params.n) }, (err, r) => (err ? res.status(500).send(String(err)) : res.json(r)));
  app.get("/cc/:n", viaCc(cc));
  app.get("/cc2/:n", viaCc(cc2));
  app.get("/pool/:n", async (req, res) => {
    const seen = [];
    const r = await pool.run(Number(req.params.n), { name: "double", onProgress: (v) => seen.push(v) });
    res.json({ r, seen });
  });
  const server = app.listen(0, "127.0.0.1");
  await new Promise((ok) => server.once("listening", ok));
  const base = `http://127.0.0.1:${server.address().port}`;
  const get = async (p) => (await fetch(base + p)).json();
  const a = await get("/cc/21"), b = await get("/cc2/4"), c = await get("/pool/5");
  const ok = a.twice === 42 && b.twice === 8 && c.r === 10 && c.seen.length === 1 && c.seen[0] === 5;
  server.close();
  await pool.close();
  await new Promise((done) => cc.exit(done));
  await new Promise((done) => cc2.exit(done));
  if (!ok) throw new Error(`${label}: wrong answers: ${JSON.stringify([a, b, c])}`);
  console.log(`pack-check: ${label}: ComputeCluster and Pool answered through Express`);
}
'
cat > app.cjs <<JS
'use strict';
const express = require('express');
const { Pool, ComputeCluster } = require('comrade-pool');
const computecluster = require('comrade-pool/compute-cluster');
const POOL_MODULE = 'tasks.js';
$body
main(__dirname, 'CommonJS (require)').catch((e) => { console.error(e); process.exit(1); });
JS
cat > app.mjs <<JS
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import express from 'express';
import { Pool, ComputeCluster } from 'comrade-pool';
import computecluster from 'comrade-pool/compute-cluster';
const require = createRequire(import.meta.url);
const POOL_MODULE = 'tasks.mjs';
$body
main(fileURLToPath(new URL('.', import.meta.url)), 'ESM (import, an ESM worker)').catch((e) => { console.error(e); process.exit(1); });
JS
timeout 120 node app.cjs
timeout 120 node app.mjs
# Every entry point resolves from the installed package, both ways.
timeout 60 node -e "for (const s of ['comrade-pool', 'comrade-pool/worker', 'comrade-pool/compute-cluster', 'comrade-pool/package.json']) require(s)"
timeout 60 node --input-type=module -e "await import('comrade-pool'); await import('comrade-pool/worker'); await import('comrade-pool/compute-cluster');"
echo "pack-check: the tarball installs and runs outside the checkout"

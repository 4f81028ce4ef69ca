'use strict';
// Run by scripts/cross-check.sh, by the aarch64 Node under qemu-user, against the packed
// package installed for linux-arm64 in a fresh folder: the addon that loads is the one of the
// platform package, and jobs run through Pool on an aarch64 Rust worker and an aarch64 Node
// worker (and through ComputeCluster when aarch64 programs can be executed directly).
// Usage: node cross-check.js APP_DIR MD5_WORKER LAUNCHER_JSON
//   LAUNCHER_JSON: the command prefix that runs an aarch64 program from here: [] when
//   binfmt_misc hands them to qemu, ["qemu-aarch64", "-L", SYSROOT] when it does not.

const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const fs = require('node:fs');
const { createRequire } = require('node:module');
const path = require('node:path');

const [app, md5Worker, launcherJson] = process.argv.slice(2);
const launcher = JSON.parse(launcherJson);
const appRequire = createRequire(path.join(app, 'package.json'));
const say = (m) => console.log(`cross-check: ${m}`);

async function main() {
  assert.equal(process.arch, 'arm64', 'this check runs in the aarch64 Node');
  say(`aarch64 Node ${process.version} runs under qemu-user (process.arch ${process.arch})`);

  const { Pool, ComputeCluster } = appRequire('comrade-pool');
  // The addon the loader took: binding.js tries ./comrade.linux-arm64-gnu.node first (the main
  // package must not ship it), then the platform package.
  const addons = Object.keys(require.cache).filter((f) => f.endsWith('.node'));
  const expected = path.join(app, 'node_modules', 'comrade-pool-linux-arm64-gnu', 'comrade.linux-arm64-gnu.node');
  assert.deepEqual(addons, [fs.realpathSync(expected)]);
  say(`the addon loaded from the platform package: ${path.relative(app, addons[0])}`);

  // The aarch64 Rust worker: jobs spread over two workers that the aarch64 addon spawned.
  const spawned = [];
  const rust = new Pool({ command: [...launcher, md5Worker], maxWorkers: 2, concurrency: 2 });
  rust.on('workerSpawn', (w) => spawned.push(w.pid));
  const payloads = Array.from({ length: 24 }, (_, i) => `payload ${i} `.repeat(i * 50 + 1));
  const answers = await Promise.all(payloads.map((p) => rust.exec('md5', [p])));
  answers.forEach(([payload, digest], i) => {
    assert.equal(payload, payloads[i]);
    assert.equal(digest, crypto.createHash('md5').update(payloads[i]).digest('hex'));
  });
  const seen = [];
  assert.equal(await rust.exec('progress', [5], { onProgress: (v) => seen.push(v) }), 5);
  assert.deepEqual(seen, [1, 2, 3, 4, 5]);
  assert.equal(await rust.exec('add', [2, 40]), 42);
  await assert.rejects(rust.exec('fail', ['no']), (e) => e.code === 'E_FAIL' && e.name === 'RangeError' && e.detail === 42);
  const pids = new Set(await Promise.all([rust.exec('pid'), rust.exec('pid'), rust.exec('pid'), rust.exec('pid')]));
  for (const pid of pids) assert.ok(spawned.includes(pid), `pid ${pid} is a worker the pool spawned`);
  assert.ok(spawned.length >= 1 && spawned.length <= 2, `spawned ${spawned}`);
  await rust.close();
  say(`Pool + aarch64 Rust worker: ${payloads.length} md5 jobs right, progress 1..5, add, a worker error with its code, ${spawned.length} worker(s)`);

  // An aarch64 Node worker: the pool's own `module` path when binfmt_misc runs aarch64
  // programs (process.execPath is this aarch64 Node), else the same command line through qemu.
  const tasks = path.join(app, 'tasks.js');
  const nodeOptions = launcher.length === 0
    ? { module: tasks }
    : { command: [...launcher, process.execPath, path.join(app, 'node_modules', 'comrade-pool', 'lib', 'pool-worker.js'), tasks] };
  const node = new Pool({ ...nodeOptions, maxWorkers: 1 });
  assert.deepEqual(await node.exec('arch'), ['arm64', process.version]);
  const progress = [];
  assert.equal(await node.run(21, { name: 'double', onProgress: (v) => progress.push(v) }), 42);
  assert.deepEqual(progress, [21]);
  await assert.rejects(node.exec('nope'), (e) => e.code === 'ERR_UNKNOWN_FUNCTION');
  await node.close();
  say(`Pool + aarch64 Node worker (${launcher.length === 0 ? 'module' : 'command through qemu'}): arch arm64, double with progress, unknown function refused`);

  if (launcher.length === 0) {
    const cc = new ComputeCluster({ module: path.join(app, 'cc-worker.js'), max_processes: 1 });
    const r = await new Promise((ok, fail) => cc.enqueue({ n: 21 }, (err, v) => (err ? fail(err) : ok(v))));
    assert.deepEqual(r, { n: 21, twice: 42, arch: 'arm64' });
    await new Promise((done) => cc.exit(done));
    say('ComputeCluster + aarch64 Node worker: answered');
  }
}

main().catch((e) => {
  console.error('cross-check: FAILED:', e);
  process.exit(1);
});

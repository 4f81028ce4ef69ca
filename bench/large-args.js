'use strict';
// Large arguments and results: time of one job against its size, 1 MiB to 64 MiB, for a Node
// worker (lib/pool-worker.js) and the Python example worker. Each size is timed alone (one job
// in flight, the worker already started), `--rounds` times (median printed):
//   args    a string of N bytes as the argument; the worker answers its length
//   object  an array of objects of about N bytes as JSON as the argument (same answer)
//   result  the worker makes a string of N bytes and returns it
// The time is the caller's: from pool.call() to the settled result (JSON in the host, the
// engine, the channel, parsing in the worker and back). Linear means time / MiB stays flat.
//
//   node bench/large-args.js [--rounds 3] [--sizes 1,4,16,30,64] [--workers node,python] [--json out.json]
const path = require('node:path');
const { spawnSync } = require('node:child_process');
const { Pool } = require('..');
const { median, machineInfo } = require('./common');

const MiB = 1024 * 1024;
const args = process.argv.slice(2);
function opt(name, def) {
  const i = args.indexOf(`--${name}`);
  return i === -1 ? def : args[i + 1];
}
const rounds = Number(opt('rounds', 3));
const sizes = opt('sizes', '1,4,16,30,64').split(',').map(Number);
const hasPython = spawnSync('python3', ['--version']).status === 0;
const workerKinds = opt('workers', hasPython ? 'node,python' : 'node').split(',');
const jsonOut = opt('json', null);

const WORKERS = {
  node: { module: path.join(__dirname, 'workers', 'large.js') },
  python: { command: ['python3', path.join(__dirname, 'workers', 'large.py')] },
};

// About `bytes` of JSON: objects of ~100 bytes each.
function objectOf(bytes) {
  const one = { id: 0, name: 'a name of some length', tags: ['x', 'y', 'z'], score: 0.5, ok: true };
  const each = JSON.stringify(one).length + 1;
  return Array.from({ length: Math.max(1, Math.round(bytes / each)) }, (_, id) => ({ ...one, id }));
}

async function timeOne(fn) {
  const t0 = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - t0) / 1e6;
}

async function main() {
  const rows = [];
  console.log(`large arguments and results: median of ${rounds} rounds, ms (ms per MiB)`);
  console.log(JSON.stringify(machineInfo()));
  for (const kind of workerKinds) {
    const pool = new Pool({ ...WORKERS[kind], maxWorkers: 1, minWorkers: 1, maxMessage: 0x7fffffff, idleTimeout: 0 });
    await pool.call('size', 'warm');
    for (const mib of sizes) {
      const n = mib * MiB;
      const text = 'a'.repeat(n);
      const obj = objectOf(n);
      const objLen = obj.length;
      const cases = {
        args: async () => {
          if ((await pool.call('size', text)) !== n) throw new Error('wrong size');
        },
        object: async () => {
          if ((await pool.call('size', obj)) !== objLen) throw new Error('wrong size');
        },
        result: async () => {
          if ((await pool.call('make', n)).length !== n) throw new Error('wrong result');
        },
      };
      const row = { worker: kind, mib };
      for (const [name, fn] of Object.entries(cases)) {
        const times = [];
        for (let r = 0; r < rounds; r++) times.push(await timeOne(fn));
        row[name] = median(times);
      }
      rows.push(row);
      const cell = (ms) => `${ms.toFixed(0).padStart(6)} ms (${(ms / mib).toFixed(1).padStart(5)}/MiB)`;
      console.log(`${kind.padEnd(7)} ${String(mib).padStart(3)} MiB   args ${cell(row.args)}   ` +
        `object ${cell(row.object)}   result ${cell(row.result)}`);
    }
    await pool.close();
  }
  if (jsonOut) require('node:fs').writeFileSync(jsonOut, JSON.stringify({ machine: machineInfo(), rows }, null, 2));
}

main().catch((e) => {
  console.error(e);
  process.exitCode = 1;
});

'use strict';
// Benchmark: a Node worker's own CPU time per job, which is what a change to the worker
// bootstrap (lib/pool-worker.js) costs. One Pool (this checkout's) with one Node function worker
// started through `command` as node <bootstrap> bench/workers/cpu-node.js, so that the bootstrap
// can be another build's while the pool stays this one; the worker reports its own
// process.cpuUsage() before and after the measured jobs. Each measurement in a fresh process,
// bootstraps interleaved round by round (order shuffled), medians and minimums printed.
//
//   node bench/worker-cpu.js [--rounds N] [--jobs N] [--workload echo|md5] [--workers N]
//                            [--baseline DIR]... [--prof DIR] [--rust]
//
// --rust: each build's Rust example worker (DIR/target/release/examples/md5_worker, built with
// cargo build --release -p comrade-worker --examples) instead of the Node bootstrap; its CPU is
// read from /proc/<pid>/stat whatever the number of workers.
//
// echo: a 16-byte string, 32 callers in flight per worker, concurrency 32 (what one of
// bench/pool.js's two workers holds). md5: the 3072-byte payload of bench/pool.js, result
// [payload, md5hex], 10 callers per worker, concurrency 10. --workers 2 (the shape of
// bench/pool.js, the parent and both workers on 2 cores: smaller batches per read) reads the
// workers' CPU from /proc/<pid>/stat instead (10 ms ticks: give it enough jobs). --baseline DIR: another checkout whose lib/pool-worker.js is
// measured in the same rounds (e.g. the commit before a change); the ratio is this bootstrap's
// CPU per job over that one's, paired round by round (median). --prof DIR: one run of each
// bootstrap with the worker under `node --cpu-prof` (profiles in DIR), instead of the rounds.

const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');
const { parseArgs } = require('node:util');
const { runBuilds, printPerJob } = require('./common');

const ROOT = path.join(__dirname, '..');
const WORKER = path.join(__dirname, 'workers', 'cpu-node.js');
const WORKLOADS = {
  echo: { fn: undefined, arg: '0123456789abcdef', callers: 32, concurrency: 32 },
  md5: { fn: 'md5', arg: 'abc'.repeat(1024), callers: 10, concurrency: 10 },
};

if (process.argv[2] === '--child') {
  child(process.argv[3], process.argv[4], Number(process.argv[5]), Number(process.argv[6]), process.argv[7],
    process.argv[8] === 'rust');
} else {
  main();
}

// utime + stime of process `pid`, in µs.
function procCpu(pid) {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) * 1e4; // fields 14 and 15, at 100 ticks a second
}

async function workersCpu(pool, workers, rust) {
  if (workers === 1 && !rust) {
    const c = await pool.call('cpu');
    return c.user + c.system;
  }
  return pool.pids.reduce((a, pid) => a + procCpu(pid), 0);
}

function child(dir, workload, jobs, workers, prof, rust) {
  const { Pool } = require(path.join(ROOT, 'index.js'));
  const w = WORKLOADS[workload];
  const nodeArgs = prof ? ['--cpu-prof', '--cpu-prof-dir', prof] : [];
  const command = rust
    ? [path.join(dir, 'target', 'release', 'examples', 'md5_worker')]
    : [process.execPath, ...nodeArgs, path.join(dir, 'lib', 'pool-worker.js'), WORKER];
  const pool = new Pool({ command, minWorkers: workers, maxWorkers: workers, concurrency: w.concurrency });
  const want = w.fn === 'md5'
    ? JSON.stringify([w.arg, crypto.createHash('md5').update(w.arg).digest('hex')])
    : JSON.stringify(w.arg);
  const run = w.fn === undefined ? () => pool.run(w.arg) : () => pool.call(w.fn, w.arg);
  const go = async (n) => {
    let left = n;
    await Promise.all(Array.from({ length: w.callers * workers }, async () => {
      while (left-- > 0) {
        if (JSON.stringify(await run()) !== want) throw new Error('wrong reply');
      }
    }));
  };
  (async () => {
    await go(Math.min(jobs, 5000));
    if (pool.pids.length !== workers) throw new Error(`${pool.pids.length} workers, not ${workers}`);
    const cpu0 = await workersCpu(pool, workers, rust);
    const t0 = process.hrtime.bigint();
    await go(jobs);
    const secs = Number(process.hrtime.bigint() - t0) / 1e9;
    const cpu1 = await workersCpu(pool, workers, rust);
    await pool.close();
    const us = (cpu1 - cpu0) / jobs;
    process.stdout.write(JSON.stringify({ us, jps: jobs / secs }));
  })();
}

function main() {
  const { values } = parseArgs({
    options: {
      rounds: { type: 'string', default: '9' },
      jobs: { type: 'string', default: '200000' },
      workload: { type: 'string', default: 'echo' },
      workers: { type: 'string', default: '1' },
      baseline: { type: 'string', multiple: true, default: [] },
      prof: { type: 'string' },
      rust: { type: 'boolean', default: false },
    },
  });
  if (!WORKLOADS[values.workload]) throw new Error(`--workload: echo or md5, not ${values.workload}`);
  const rounds = values.prof ? 1 : Number(values.rounds);
  const jobs = Number(values.jobs);
  const builds = [ROOT, ...values.baseline.map((d) => path.resolve(d))];
  const runs = runBuilds(builds, rounds, (b) => {
    const args = [__filename, '--child', b, values.workload, String(jobs), values.workers];
    args.push(values.prof ? path.resolve(values.prof, path.basename(b)) : '');
    if (values.rust) args.push('rust');
    return args;
  }, 300000);
  console.log(`${values.rust ? 'Rust' : 'Node'} worker CPU per job, ${values.workload}, ${values.workers} worker(s), ${jobs} jobs per run, ` +
    `${rounds} rounds`);
  printPerJob(runs, ROOT, 'bootstrap');
}

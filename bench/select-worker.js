'use strict';
// Benchmark: the cost of worker selection strategies (issue 10, item 8), above all of a custom
// selectWorker function, which the JS thread calls once per job at submission (with the
// workers' loads read from the engine). One run, contenders interleaved round by round, each
// on a fresh pool of 2 warm Node workers (bench/workers/pool-node.js, concurrency 32), 64
// callers echoing a 16-byte string, every reply checked; medians in jobs/s, and the extra
// cost per job against the default in µs. Then the cost on the JS thread alone: the time of
// 20k synchronous run() calls in one tick (the submissions, where a selectWorker runs), per
// job, medians.
//
//   node bench/select-worker.js [--rounds N] [--jobs N]
//
// Contenders:
//   least-busy    the default strategy (nothing on the JS side)
//   round-robin   strategy: 'round-robin' (chosen in the engine, nothing on the JS side)
//   random        strategy: 'random' (chosen in the engine)
//   fn-undefined  strategy: a function that returns undefined (the default decides): what
//                 calling a selectWorker and reading the loads costs
//   fn-pick       strategy: a function that returns the pid of the worker with the fewest
//                 jobs in flight
const path = require('node:path');
const { Pool } = require('..');
const { median, roundsAndJobs, interleaved, echoThroughput } = require('./common');

const { rounds: ROUNDS, jobs: JOBS } = roundsAndJobs();
const CALLERS = 64;
const WORKER = path.join(__dirname, 'workers', 'pool-node.js');

function leastInFlight(job, workers) {
  let best;
  for (const w of workers) if (best === undefined || w.inFlight < best.inFlight) best = w;
  return best === undefined ? undefined : best.pid;
}

const contenders = [
  { name: 'least-busy', strategy: undefined },
  { name: 'round-robin', strategy: 'round-robin' },
  { name: 'random', strategy: 'random' },
  { name: 'fn-undefined', strategy: () => undefined },
  { name: 'fn-pick', strategy: leastInFlight },
];

function newPool(c) {
  return new Pool({
    module: WORKER, minWorkers: 2, maxWorkers: 2, concurrency: 32,
    ...(c.strategy === undefined ? {} : { strategy: c.strategy }),
  });
}

async function measure(c) {
  const pool = newPool(c);
  try {
    return await echoThroughput(pool, { jobs: JOBS, callers: CALLERS, call: (s) => pool.run(s) });
  } finally {
    await pool.close();
  }
}

// µs of JS-thread time per run() call: 20k calls in one tick, then every result awaited.
async function submitCost(c) {
  const pool = newPool(c);
  await Promise.all(Array.from({ length: 256 }, (_, i) => pool.run(`w${i}`)));
  const n = 20000;
  const ps = new Array(n);
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) ps[i] = pool.run('job-000000000000');
  const us = Number(process.hrtime.bigint() - t0) / 1e3 / n;
  await Promise.all(ps);
  await pool.close();
  return us;
}

(async () => {
  const costs = await interleaved(ROUNDS, contenders, submitCost);
  const results = await interleaved(ROUNDS, contenders, measure);
  const base = median(results['least-busy']);
  console.log('| strategy | median jobs/s | vs least-busy | extra µs/job | rounds (jobs/s) |');
  console.log('|---|---:|---:|---:|---|');
  for (const c of contenders) {
    const m = median(results[c.name]);
    const extra = (1e6 / m - 1e6 / base).toFixed(2);
    console.log(`| ${c.name} | ${Math.round(m)} | ${(m / base).toFixed(3)} | ${extra} | ${results[c.name].map(Math.round).join(', ')} |`);
  }
  const baseCost = median(costs['least-busy']);
  console.log('\n| strategy | run() call, median µs | extra µs | rounds (µs) |');
  console.log('|---|---:|---:|---|');
  for (const c of contenders) {
    const m = median(costs[c.name]);
    console.log(`| ${c.name} | ${m.toFixed(2)} | ${(m - baseCost).toFixed(2)} | ${costs[c.name].map((x) => x.toFixed(2)).join(', ')} |`);
  }
})().catch((e) => {
  console.error(e);
  process.exit(1);
});

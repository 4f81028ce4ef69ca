'use strict';
// Benchmark: the cost of priorities (issue 10). One run, contenders interleaved round by
// round, each on a fresh pool of 2 warm Node workers (bench/workers/pool-node.js, concurrency
// 32), 64 callers echoing a 16-byte string, every reply checked; medians in jobs/s.
//
//   node bench/priority.js [--rounds N] [--jobs N]
//   COMRADE_BASELINE=/path/to/other/checkout/index.js node bench/priority.js
//
// Contenders:
//   none       pool.run(s): no job gives a priority (the hot path: no per-job side arrays)
//   options    pool.run(s, {}): an options object without a priority (what reading per-job
//              options costs, apart from priorities)
//   priority   pool.run(s, { priority: i % 8 }): every job has its own priority (8 levels)
//   baseline   (only with COMRADE_BASELINE) pool.run(s) on another build, e.g. the commit
//              before priorities, to compare the hot path with
const path = require('node:path');
const { median, roundsAndJobs, interleaved, echoThroughput } = require('./common');

const { rounds: ROUNDS, jobs: JOBS } = roundsAndJobs();
const CALLERS = 64;
const WORKER = path.join(__dirname, 'workers', 'pool-node.js');

const contenders = [
  { name: 'none', entry: path.join(__dirname, '..', 'index.js'), call: (pool, s) => pool.run(s) },
  // The cost of reading per-job options at all, apart from priorities.
  { name: 'options', entry: path.join(__dirname, '..', 'index.js'), call: (pool, s) => pool.run(s, {}) },
  {
    name: 'priority', entry: path.join(__dirname, '..', 'index.js'),
    call: (pool, s, i) => pool.run(s, { priority: i % 8 }),
  },
];
if (process.env.COMRADE_BASELINE) {
  contenders.push({ name: 'baseline', entry: path.resolve(process.env.COMRADE_BASELINE), call: (pool, s) => pool.run(s) });
}

async function measure(c) {
  const { Pool } = require(c.entry);
  const pool = new Pool({ module: WORKER, minWorkers: 2, maxWorkers: 2, concurrency: 32 });
  try {
    return await echoThroughput(pool, { jobs: JOBS, callers: CALLERS, call: (s, i) => c.call(pool, s, i) });
  } finally {
    await pool.close();
  }
}

(async () => {
  const results = await interleaved(ROUNDS, contenders, measure);
  const none = median(results.none);
  console.log(`| contender | median jobs/s | vs none | rounds (jobs/s) |`);
  console.log(`|---|---:|---:|---|`);
  for (const c of contenders) {
    const m = median(results[c.name]);
    console.log(`| ${c.name} | ${Math.round(m)} | ${(m / none).toFixed(3)} | ${results[c.name].map(Math.round).join(', ')} |`);
  }
})().catch((e) => {
  console.error(e);
  process.exit(1);
});

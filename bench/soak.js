'use strict';
// Soak: a million echo jobs through one comrade Pool; the parent's memory must not grow with
// the number of jobs done.
//
//   node --expose-gc bench/soak.js [--jobs N] [--inflight N]
//
// Prints the parent's RSS and V8 heap after a warm-up and at the end (both after a full GC),
// at every 10% of the run, and the throughput. Every reply is checked.

const path = require('node:path');
const { parseArgs } = require('node:util');
const { Pool } = require(path.join(__dirname, '..'));

const { values } = parseArgs({
  options: {
    jobs: { type: 'string', default: '1000000' },
    inflight: { type: 'string', default: '512' },
  },
});
const JOBS = Number(values.jobs);
const INFLIGHT = Number(values.inflight);
const gc = globalThis.gc || (() => {});
const mb = (n) => (n / 1048576).toFixed(1);

function mem() {
  gc();
  const m = process.memoryUsage();
  return { rss: m.rss, heap: m.heapUsed };
}

async function main() {
  if (!globalThis.gc) console.log('(run with --expose-gc for exact heap figures)');
  const pool = new Pool({ module: path.join(__dirname, 'workers', 'tiny.js'), minWorkers: 2, maxWorkers: 2, concurrency: 64 });
  await Promise.all(Array.from({ length: 20000 }, (_, i) => pool.run(i)));
  const start = mem();
  console.log(`after warm-up:  rss ${mb(start.rss)} MB, heap ${mb(start.heap)} MB`);
  const t0 = process.hrtime.bigint();
  let done = 0;
  let wrong = 0;
  let next = 0;
  let lastReport = 0;
  await new Promise((resolve, reject) => {
    const launch = () => {
      const n = next++;
      pool.run({ n, s: 'payload' }).then((r) => {
        if (r.n !== n || r.s !== 'payload') wrong++;
        done++;
        if (done - lastReport >= JOBS / 10) {
          lastReport = done;
          const m = process.memoryUsage();
          console.log(`${String(done).padStart(8)} jobs: rss ${mb(m.rss)} MB, heap ${mb(m.heapUsed)} MB`);
        }
        if (next < JOBS) launch();
        else if (done === JOBS) resolve();
      }, reject);
    };
    for (let i = 0; i < Math.min(INFLIGHT, JOBS); i++) launch();
  });
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  const end = mem();
  const stats = pool.stats();
  await pool.close();
  console.log(`after ${JOBS} jobs: rss ${mb(end.rss)} MB, heap ${mb(end.heap)} MB`);
  console.log(`throughput: ${Math.round(JOBS / secs).toLocaleString('en-US')} jobs/s over ${secs.toFixed(1)} s; ` +
    `wrong replies: ${wrong}; pool counted ${stats.completed} completed, ${stats.failed} failed`);
  console.log(`growth: rss ${mb(end.rss - start.rss)} MB, heap ${mb(end.heap - start.heap)} MB`);
  if (wrong) process.exit(1);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});

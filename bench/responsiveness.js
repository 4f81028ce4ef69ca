'use strict';
// Responsiveness: the parent's event-loop delay while a pool is saturated with tiny jobs.
//
//   node bench/responsiveness.js [--seconds S] [--inflight N] [--rounds R]
//
// Each contender gets 2 workers and is kept saturated: N jobs in flight at all times (a
// settled job is replaced at once) for S seconds. Meanwhile perf_hooks.monitorEventLoopDelay
// (1 ms resolution) samples how late the parent's event loop runs. Reported: the
// delay p50 / p99 / max in ms and the jobs/s achieved. Every reply is checked.
// Contenders: comrade Pool (concurrency 32, with and without niceIncrement; concurrency 1),
// comrade ComputeCluster, npm compute-cluster, npm workerpool (process mode). Rounds are
// interleaved with the order rotated; medians are reported.

const path = require('node:path');
const { monitorEventLoopDelay } = require('node:perf_hooks');
const { parseArgs } = require('node:util');

const ROOT = path.join(__dirname, '..');
const TINY = path.join(__dirname, 'workers', 'tiny.js');
const WP_WORKER = path.join(__dirname, 'workers', 'pool-workerpool.js');

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '4' },
    inflight: { type: 'string', default: '256' },
    rounds: { type: 'string', default: '3' },
  },
});
const SECONDS = Number(values.seconds);
const INFLIGHT = Number(values.inflight);
const ROUNDS = Number(values.rounds);

const contenders = {
  'comrade Pool': () => {
    const { Pool } = require(ROOT);
    const pool = new Pool({ module: TINY, minWorkers: 2, maxWorkers: 2, concurrency: 32 });
    return { run: (x) => pool.run(x), close: () => pool.close() };
  },
  // The same, with the workers at a lower CPU priority than the parent.
  'comrade Pool, niceIncrement 10': () => {
    const { Pool } = require(ROOT);
    const pool = new Pool({ module: TINY, minWorkers: 2, maxWorkers: 2, concurrency: 32, niceIncrement: 10 });
    return { run: (x) => pool.run(x), close: () => pool.close() };
  },
  // One job per worker at a time: the rate of the other contenders, for a like-for-like delay.
  'comrade Pool, concurrency 1': () => {
    const { Pool } = require(ROOT);
    const pool = new Pool({ module: TINY, minWorkers: 2, maxWorkers: 2, concurrency: 1 });
    return { run: (x) => pool.run(x), close: () => pool.close() };
  },
  'comrade ComputeCluster': () => {
    const { ComputeCluster } = require(ROOT);
    const cc = new ComputeCluster({ module: TINY, max_processes: 2, max_backlog: -1 });
    return ccAdapter(cc);
  },
  'compute-cluster 0.0.9': () => {
    const CC = require('compute-cluster');
    const cc = new CC({ module: TINY, max_processes: 2, max_backlog: -1 });
    return ccAdapter(cc);
  },
  'workerpool (process)': () => {
    const workerpool = require('workerpool');
    const pool = workerpool.pool(WP_WORKER, { workerType: 'process', maxWorkers: 2, minWorkers: 2 });
    return { run: (x) => pool.exec('echo', [x]), close: () => pool.terminate() };
  },
};

function ccAdapter(cc) {
  cc.on('error', () => {});
  return {
    run: (x) => new Promise((resolve, reject) => {
      cc.enqueue(x, (err, r) => (err ? reject(new Error(String(err))) : resolve(r)));
    }),
    close: () => new Promise((resolve) => cc.exit(resolve)),
  };
}

async function measure(name) {
  const c = contenders[name]();
  // Warm up: workers started and JIT warm.
  await Promise.all(Array.from({ length: 200 }, (_, i) => c.run(i)));
  const h = monitorEventLoopDelay({ resolution: 1 });
  let done = 0;
  let wrong = 0;
  let running = true;
  const t0 = process.hrtime.bigint();
  h.enable();
  await new Promise((resolve, reject) => {
    let active = 0;
    const launch = (n) => {
      active++;
      c.run(n).then((r) => {
        if (r !== n) wrong++;
        done++;
        active--;
        if (running) launch(n + INFLIGHT);
        else if (active === 0) resolve();
      }, reject);
    };
    for (let i = 0; i < INFLIGHT; i++) launch(i);
    setTimeout(() => { running = false; }, SECONDS * 1000);
  });
  h.disable();
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  await c.close();
  if (wrong) throw new Error(`${name}: ${wrong} wrong replies`);
  return {
    p50: h.percentile(50) / 1e6,
    p99: h.percentile(99) / 1e6,
    max: h.max / 1e6,
    rate: done / secs,
  };
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
};

async function main() {
  const names = Object.keys(contenders);
  const results = Object.fromEntries(names.map((n) => [n, []]));
  for (let r = 0; r < ROUNDS; r++) {
    const order = names.map((_, i) => names[(i + r) % names.length]);
    for (const name of order) {
      results[name].push(await measure(name));
      process.stderr.write('.');
    }
  }
  process.stderr.write('\n');
  console.log(`Event-loop delay of the parent while ${INFLIGHT} tiny jobs stay in flight on 2 workers ` +
    `(${SECONDS} s per measurement, medians of ${ROUNDS} rounds)\n`);
  console.log('| contender | delay p50 ms | delay p99 ms | delay max ms | jobs/s |');
  console.log('|---|---:|---:|---:|---:|');
  for (const name of names) {
    const rs = results[name];
    const f = (k, d = 2) => median(rs.map((x) => x[k])).toFixed(d);
    console.log(`| ${name} | ${f('p50')} | ${f('p99')} | ${f('max')} | ${Number(f('rate', 0)).toLocaleString('en-US')} |`);
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});

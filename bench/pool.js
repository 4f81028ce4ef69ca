'use strict';
// Benchmark: comrade's Pool (with a Node function worker, and with the Rust
// example worker) against a bare pipelined child_process.fork dispatcher,
// npm workerpool (process mode) and npm piscina (worker threads), all with 2
// workers and Promise-returning calls.
//
//   node bench/pool.js [--rounds N] [--json FILE [--json-suffix S]] [--only LIST]
//        [--echo-jobs N] [--md5-jobs N] [--latency-jobs N] [--concurrency N]
// scripts/bench.sh (npm run bench) builds the release addon and the Rust example
// worker, runs bench/compute-cluster.js, then this with the same arguments.
//
// Contenders:
//   comrade-node  new Pool({ module: bench/workers/pool-node.js, minWorkers: 2, maxWorkers: 2, concurrency })
//   comrade-rust  new Pool({ command: [target/release/examples/md5_worker], minWorkers: 2, maxWorkers: 2, concurrency })
//                 (cargo build --release -p comrade-worker --examples; scripts/bench.sh does it)
//   fork          2 × child_process.fork, every message tagged with an id, any number in
//                 flight per child, sent to the least-loaded child (ties round-robin),
//                 replies matched by id: the raw Node IPC ceiling, no batching, no queue
//   workerpool    workerpool.pool(..., { workerType: 'process', maxWorkers: 2 })
//   piscina       new Piscina({ minThreads: 2, maxThreads: 2 }): threads, not processes
//   comrade-node-baseline, comrade-rust-baseline
//                 only with COMRADE_BASELINE=<another checkout, built>: the same two pools
//                 on that build (its Rust example worker when it has one built, else this
//                 one's), e.g. the commit before a change, so that a regression shows in one
//                 run: the report gives this build's medians over the baseline's
//
// comrade `concurrency` (calls in flight per worker), chosen by sweeping 1..64 with
// release builds on a 2-core machine (noisy; medians of 5-7 interleaved runs, jobs/s);
// --concurrency N overrides all three:
//   (a) echo     32: the 64 callers' jobs all sit in the two workers' sockets, so each
//                   read on either side carries a batch. Node worker: c=1 11k, 8 27k,
//                   16 55k, 32 65-72k; Rust worker: 36k, 111k, 131-153k, 160-172k;
//                   64 is within noise of 32 (only 64 jobs are in flight anyway)
//   (b) md5      10: the 20 callers' jobs all in flight, 10 per worker. c=1 loses about
//                   half (Node 4.4k, Rust 9.3k); 8 and up are within noise of each
//                   other (Node 7.4-9.3k, Rust 13-18k)
//   (c) latency  32: one job in flight, so it does not matter; same pool shape as (a)
//
// Workloads:
//   (a) echo: 16-byte string, 64 callers in flight, jobs/s
//   (b) md5 (luafan): 3072-byte payload, worker returns [payload, md5hex],
//       20 callers in flight (each awaits its job, then submits the next),
//       every digest checked against node:crypto in the parent, jobs/s
//   (c) latency: echo with one job in flight, p50/p99 in µs
// Rounds are interleaved (contender order rotated each round), so drift on the
// machine hits everyone alike, and every measurement runs in a fresh process of
// its own (this script again; bench/common.js runRounds), as the peers harness does.
// Prints medians as a markdown table. Exits 1 on any wrong reply or error.

const { fork } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');
const { parseArgs } = require('node:util');
const {
  fmtInt, fmtRatio, machineInfo, cpuSnapshot, othersCpuShare, runRounds, finish,
} = require('./common');

const ROOT = path.join(__dirname, '..');
const COMRADE_ENTRY = path.join(ROOT, 'index.js');
const NODE_WORKER = path.join(__dirname, 'workers', 'pool-node.js');
const FORK_WORKER = path.join(__dirname, 'workers', 'pool-fork.js');
const WORKERPOOL_WORKER = path.join(__dirname, 'workers', 'pool-workerpool.js');
const PISCINA_WORKER = path.join(__dirname, 'workers', 'pool-piscina.js');
const RUST_WORKER = process.env.COMRADE_MD5_WORKER ||
  path.join(process.env.CARGO_TARGET_DIR ? path.resolve(ROOT, process.env.CARGO_TARGET_DIR) : path.join(ROOT, 'target'),
    'release', 'examples', 'md5_worker');
const POOL_SIZE = 2;
const ECHO_CALLERS = 64;
const MD5_CALLERS = 20;
const WARMUP_JOBS = 500;
// comrade Pool `concurrency` per workload (see the header).
const COMRADE_CONCURRENCY = { echo: 32, md5: 10, latency: 32 };
// A measurement that makes no progress for this long is a stall, not a slow run.
const STALL_MS = 30000;

// Another build of comrade to compare with (a checkout's root or its index.js), if any.
const BASELINE = process.env.COMRADE_BASELINE
  ? path.resolve(process.env.COMRADE_BASELINE).replace(/[\\/]index\.js$/, '')
  : null;
const CONTENDER_NAMES = ['comrade-node', 'comrade-rust', 'fork', 'workerpool', 'piscina',
  ...(BASELINE ? ['comrade-node-baseline', 'comrade-rust-baseline'] : [])];
// scripts/bench.sh passes the same arguments to bench/compute-cluster.js and to this
// benchmark: `comrade` selects both comrade contenders here, and compute-cluster's own
// contender name is accepted (and has nothing to run here).
const ONLY_ALIASES = {
  comrade: ['comrade-node', 'comrade-rust', ...(BASELINE ? ['comrade-node-baseline', 'comrade-rust-baseline'] : [])],
  'compute-cluster': [],
};

const USAGE = `usage: node bench/pool.js [options]
  --rounds N         interleaved rounds, medians reported (default 5, minimum 3)
  --json FILE        also write the raw per-round numbers to FILE
  --json-suffix S    insert S before FILE's extension (scripts/bench.sh passes .pool,
                     so --json out.json leaves compute-cluster's numbers in out.json
                     and writes these to out.pool.json)
  --only LIST        comma-separated subset of: ${CONTENDER_NAMES.join(',')}
                     (comrade = both comrade contenders)
  --echo-jobs N      jobs per (a) measurement (default 30000)
  --md5-jobs N       jobs per (b) measurement (default 10000)
  --latency-jobs N   sequential jobs per (c) measurement (default 5000)
  --concurrency N    comrade Pool concurrency for every workload (default: echo ${COMRADE_CONCURRENCY.echo}, ` +
  `md5 ${COMRADE_CONCURRENCY.md5}, latency ${COMRADE_CONCURRENCY.latency})`;

const CLI_OPTIONS = {
  rounds: { type: 'string', default: '5' },
  json: { type: 'string' },
  'json-suffix': { type: 'string' },
  only: { type: 'string' },
  'echo-jobs': { type: 'string', default: '30000' },
  'md5-jobs': { type: 'string', default: '10000' },
  'latency-jobs': { type: 'string', default: '5000' },
  concurrency: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
};

function parseCli() {
  let values;
  try {
    ({ values } = parseArgs({ options: CLI_OPTIONS }));
  } catch (err) {
    console.error(`${err.message}\n${USAGE}`);
    process.exit(2);
  }
  if (values.help) {
    console.log(USAGE);
    process.exit(0);
  }
  const int = (name, min) => {
    const n = Number(values[name]);
    if (!Number.isInteger(n) || n < min) {
      console.error(`--${name} must be an integer >= ${min}\n${USAGE}`);
      process.exit(2);
    }
    return n;
  };
  let only = null;
  if (values.only) {
    const names = values.only.split(',').map((s) => s.trim());
    const unknown = names.filter((n) => !CONTENDER_NAMES.includes(n) && !Object.hasOwn(ONLY_ALIASES, n));
    if (unknown.length) {
      console.error(`--only: unknown contender ${unknown.join(', ')}\n${USAGE}`);
      process.exit(2);
    }
    only = names.flatMap((n) => (Object.hasOwn(ONLY_ALIASES, n) ? ONLY_ALIASES[n] : [n]));
  }
  let json = values.json;
  if (json && values['json-suffix']) {
    const ext = path.extname(json);
    json = json.slice(0, json.length - ext.length) + values['json-suffix'] + ext;
  }
  const concurrency = { ...COMRADE_CONCURRENCY };
  if (values.concurrency !== undefined) {
    const c = int('concurrency', 1);
    for (const k of Object.keys(concurrency)) concurrency[k] = c;
  }
  return {
    rounds: int('rounds', 3),
    json,
    only,
    echoJobs: int('echo-jobs', 100),
    md5Jobs: int('md5-jobs', 100),
    latencyJobs: int('latency-jobs', 100),
    concurrency,
  };
}

// ---------------------------------------------------------------------------
// Contenders. Each `create(workloadId, cfg)` returns
//   { echo(s) -> Promise<s>, md5(payload) -> Promise<[payload, hex]>, close() -> Promise }.

// The raw-IPC ceiling: Node's own channel, ids on the messages, every job sent
// at once (no per-worker limit, no queue in the parent), replies matched by id.
class PipelinedFork {
  constructor(module, size) {
    this.slots = [];
    this.nextId = 0;
    this.rr = 0;
    this.closing = false;
    this.errors = [];
    for (let i = 0; i < size; i++) {
      const slot = { child: fork(module), pending: new Map(), exited: null };
      slot.exited = new Promise((resolve) => {
        slot.child.on('exit', (code, signal) => {
          const msg = `worker ${slot.child.pid} exited (code ${code}, signal ${signal})`;
          for (const job of slot.pending.values()) job.reject(new Error(msg));
          slot.pending.clear();
          if (!this.closing) this.errors.push(msg);
          resolve();
        });
      });
      slot.child.on('message', ([id, value]) => {
        const job = slot.pending.get(id);
        if (!job) {
          this.errors.push(`reply from ${slot.child.pid} to job ${id}, which is not in flight there`);
          return;
        }
        slot.pending.delete(id);
        job.resolve(value);
      });
      this.slots.push(slot);
    }
  }

  call(fn, arg) {
    // Least-loaded, starting the scan at the round-robin cursor so ties rotate.
    const n = this.slots.length;
    let best = this.slots[this.rr];
    for (let k = 1; k < n; k++) {
      const s = this.slots[(this.rr + k) % n];
      if (s.pending.size < best.pending.size) best = s;
    }
    this.rr = (this.rr + 1) % n;
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      best.pending.set(id, { resolve, reject });
      best.child.send([id, fn, arg]);
    });
  }

  async close() {
    this.closing = true;
    for (const s of this.slots) s.child.kill();
    await Promise.all(this.slots.map((s) => s.exited));
    if (this.errors.length) throw new Error(this.errors.join('; '));
  }
}

function comradeContender(name, label, spec, entry = COMRADE_ENTRY) {
  return {
    name,
    label,
    create(workload, cfg) {
      const { Pool } = require(entry);
      const errors = [];
      const pool = new Pool({ ...spec, minWorkers: POOL_SIZE, maxWorkers: POOL_SIZE, concurrency: cfg.concurrency[workload] });
      pool.on('protocolError', (e) => errors.push(`protocol error: ${JSON.stringify(e)}`));
      pool.on('workerExit', (e) => {
        if (!e.expected) errors.push(`worker exited unexpectedly: ${JSON.stringify(e)}`);
      });
      return {
        echo: (s) => pool.run(s),
        md5: (payload) => pool.call('md5', payload),
        async close() {
          await pool.close();
          if (errors.length) throw new Error(errors.join('; '));
        },
      };
    },
  };
}

function loadContenders(only) {
  const contenders = [];
  const skipped = [];
  const want = (name) => !only || only.includes(name);

  const haveComrade = fs.existsSync(COMRADE_ENTRY);
  if (want('comrade-node') || want('comrade-rust')) {
    if (!haveComrade) {
      skipped.push(`comrade: SKIPPED, ${COMRADE_ENTRY} does not exist (engine not built)`);
    } else if (typeof require(COMRADE_ENTRY).Pool !== 'function') {
      // A present but broken entry point is a failure, not a skip.
      throw new Error(`${COMRADE_ENTRY} does not export a Pool class`);
    }
  }
  if (haveComrade && want('comrade-node')) {
    contenders.push(comradeContender('comrade-node', 'comrade Pool + Node worker', { module: NODE_WORKER }));
  }
  if (haveComrade && want('comrade-rust')) {
    if (!fs.existsSync(RUST_WORKER)) {
      skipped.push(`comrade-rust: SKIPPED, ${RUST_WORKER} does not exist ` +
        '(cargo build --release -p comrade-worker --examples)');
    } else {
      contenders.push(comradeContender('comrade-rust', 'comrade Pool + Rust worker', { command: [RUST_WORKER] }));
    }
  }
  if (BASELINE && (want('comrade-node-baseline') || want('comrade-rust-baseline'))) {
    const entry = path.join(BASELINE, 'index.js');
    if (typeof require(entry).Pool !== 'function') throw new Error(`${entry} does not export a Pool class`);
    if (want('comrade-node-baseline')) {
      contenders.push(comradeContender('comrade-node-baseline', 'comrade Pool + Node worker (baseline)',
        { module: NODE_WORKER }, entry));
    }
    const own = path.join(BASELINE, 'target', 'release', 'examples', 'md5_worker');
    const worker = fs.existsSync(own) ? own : RUST_WORKER;
    if (want('comrade-rust-baseline') && fs.existsSync(worker)) {
      contenders.push(comradeContender('comrade-rust-baseline', 'comrade Pool + Rust worker (baseline)',
        { command: [worker] }, entry));
    }
  }
  if (want('fork')) {
    contenders.push({
      name: 'fork',
      label: 'child_process.fork, pipelined, bare',
      create() {
        const p = new PipelinedFork(FORK_WORKER, POOL_SIZE);
        return {
          echo: (s) => p.call(null, s),
          md5: (payload) => p.call('md5', payload),
          close: () => p.close(),
        };
      },
    });
  }
  if (want('workerpool')) {
    const workerpool = require('workerpool');
    const version = require('workerpool/package.json').version;
    contenders.push({
      name: 'workerpool',
      label: `workerpool ${version} (processes)`,
      create() {
        const pool = workerpool.pool(WORKERPOOL_WORKER, { workerType: 'process', maxWorkers: POOL_SIZE });
        return {
          echo: (s) => pool.exec('echo', [s]),
          md5: (payload) => pool.exec('md5', [payload]),
          close: () => pool.terminate(),
        };
      },
    });
  }
  if (want('piscina')) {
    const { Piscina, version } = require('piscina');
    contenders.push({
      name: 'piscina',
      label: `piscina ${version} (threads)`,
      create() {
        const pool = new Piscina({ filename: PISCINA_WORKER, minThreads: POOL_SIZE, maxThreads: POOL_SIZE });
        return {
          echo: (s) => pool.run(s, { name: 'echo' }),
          md5: (payload) => pool.run(payload, { name: 'md5' }),
          close: () => pool.destroy(),
        };
      },
    });
  }
  return { contenders, skipped };
}

// ---------------------------------------------------------------------------
// Workloads

const nowNs = () => process.hrtime.bigint();
const md5hex = (s) => crypto.createHash('md5').update(s).digest('hex');
const errText = (e) => (e && e.message ? `${e.code ? `${e.code}: ` : ''}${e.message}` : String(e));

// Distinct payload per job, so a reply delivered to the wrong job is caught.
const echoArgs = (i) => String(i).padStart(16, '0');
const checkEcho = (args, r) => (r === args ? null : `echo: sent ${JSON.stringify(args)}, got ${JSON.stringify(r)}`);

// luafan's payload 'abc'.repeat(1024) (3072 bytes), with the job number
// stamped over its first 8 bytes: same size, but every job is distinguishable.
const MD5_BASE = 'abc'.repeat(1024);
const md5Args = (i) => String(i).padStart(8, '0') + MD5_BASE.slice(8);
function checkMd5(args, r) {
  if (!Array.isArray(r) || r.length !== 2) return `md5: malformed reply ${String(JSON.stringify(r)).slice(0, 80)}`;
  const want = md5hex(args);
  if (r[0] !== args) return `md5: payload mismatch for job ${args.slice(0, 8)} (got ${String(r[0]).slice(0, 8)}...)`;
  if (r[1] !== want) return `md5: digest mismatch for job ${args.slice(0, 8)}: want ${want}, got ${r[1]}`;
  return null;
}

// Rejects if `progress()` stays the same for STALL_MS while `promise` is pending.
function watch(promise, progress, what) {
  let timer;
  let last = -1;
  const stall = new Promise((_, reject) => {
    timer = setInterval(() => {
      const now = progress();
      if (now === last) reject(new Error(`stalled: ${what}: ${now} jobs done, no progress for ${STALL_MS} ms`));
      last = now;
    }, STALL_MS);
  });
  return Promise.race([promise, stall]).finally(() => clearInterval(timer));
}

// `callers` independent callers, each submitting its next job when its previous
// one completes, until `jobs` jobs are done. Resolves with seconds.
async function closedLoop(call, { jobs, callers, makeArgs, check, failures }) {
  let issued = 0;
  let done = 0;
  const caller = async () => {
    while (issued < jobs) {
      const args = makeArgs(issued++);
      try {
        const bad = check(args, await call(args));
        if (bad) failures.push(bad);
      } catch (e) {
        failures.push(`error: ${errText(e)}`);
      }
      done++;
    }
  };
  const start = nowNs();
  const all = [];
  for (let c = 0; c < Math.min(callers, jobs); c++) all.push(caller());
  await watch(Promise.all(all), () => done, `${done}/${jobs}`);
  return Number(nowNs() - start) / 1e9;
}

// One job in flight; returns the sorted per-job round trips in µs.
async function sequential(call, { jobs, failures }) {
  const samples = new Float64Array(jobs);
  let i = 0;
  const run = async () => {
    for (; i < jobs; i++) {
      const args = echoArgs(i);
      const t0 = nowNs();
      try {
        const r = await call(args);
        samples[i] = Number(nowNs() - t0) / 1e3;
        const bad = checkEcho(args, r);
        if (bad) failures.push(bad);
      } catch (e) {
        samples[i] = Number(nowNs() - t0) / 1e3;
        failures.push(`error: ${errText(e)}`);
      }
    }
  };
  await watch(run(), () => i, `sequential, of ${jobs}`);
  return samples.sort();
}

// Nearest-rank percentile of sorted samples.
const percentile = (sorted, p) => sorted[Math.max(0, Math.ceil(p * sorted.length) - 1)];


const WORKLOADS = [
  {
    id: 'echo',
    async measure(pool, cfg, failures) {
      const spec = { callers: ECHO_CALLERS, makeArgs: echoArgs, check: checkEcho, failures };
      await closedLoop(pool.echo, { ...spec, jobs: WARMUP_JOBS });
      const seconds = await closedLoop(pool.echo, { ...spec, jobs: cfg.echoJobs });
      return { echo: cfg.echoJobs / seconds };
    },
  },
  {
    id: 'md5',
    async measure(pool, cfg, failures) {
      const spec = { callers: MD5_CALLERS, makeArgs: md5Args, check: checkMd5, failures };
      await closedLoop(pool.md5, { ...spec, jobs: WARMUP_JOBS });
      const seconds = await closedLoop(pool.md5, { ...spec, jobs: cfg.md5Jobs });
      return { md5: cfg.md5Jobs / seconds };
    },
  },
  {
    id: 'latency',
    async measure(pool, cfg, failures) {
      // Concurrent warm-up so a lazily spawning pool has started both workers.
      await closedLoop(pool.echo, { jobs: WARMUP_JOBS, callers: ECHO_CALLERS, makeArgs: echoArgs, check: checkEcho, failures });
      await sequential(pool.echo, { jobs: WARMUP_JOBS, failures });
      const sorted = await sequential(pool.echo, { jobs: cfg.latencyJobs, failures });
      return { p50: percentile(sorted, 0.5), p99: percentile(sorted, 0.99) };
    },
  },
];

async function closePool(pool) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error('close() did not settle within 10 s')), 10000);
  });
  try {
    await Promise.race([pool.close(), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

// ---------------------------------------------------------------------------
// Report

function report(info, cfg, contenders, skipped, medians) {
  const lines = [];
  lines.push(`Node ${info.node} | ${info.cpu} | ${info.cores} cores | ${info.platform}` +
    (info.commit ? ` | comrade @ ${info.commit}` : ''));
  lines.push(`${POOL_SIZE} workers per pool, medians of ${cfg.rounds} interleaved rounds; ` +
    `(a) ${cfg.echoJobs} jobs, (b) ${cfg.md5Jobs} jobs, (c) ${cfg.latencyJobs} jobs; ` +
    `comrade concurrency (a) ${cfg.concurrency.echo}, (b) ${cfg.concurrency.md5}, (c) ${cfg.concurrency.latency}`);
  for (const s of skipped) lines.push(`NOTE: ${s}`);
  // On a 2-core machine anything else running moves the absolute figures a
  // lot; the interleaving keeps the ratios fair, not the jobs/s.
  if (info.othersCpu !== null) {
    lines.push(`other processes used ${(info.othersCpu * 100).toFixed(0)}% of the machine's CPU during the run` +
      (info.othersCpu > 0.1 ? ': NOTE the machine was busy, absolute figures are low and noisy' : ''));
  }
  lines.push('');
  lines.push('| contender | (a) echo 16 B, 64 in flight, jobs/s | (b) md5 3 KB, 20 in flight, jobs/s | (c) p50 µs | (c) p99 µs |');
  lines.push('|---|---:|---:|---:|---:|');
  for (const c of contenders) {
    const m = medians[c.name];
    lines.push(`| ${c.label} | ${fmtInt(m.echo)} | ${fmtInt(m.md5)} | ${fmtInt(m.p50)} | ${fmtInt(m.p99)} |`);
  }
  const node = medians['comrade-node'];
  const rust = medians['comrade-rust'];
  const bare = medians.fork;
  const ratios = [];
  if (node && bare) {
    ratios.push(`comrade Pool (Node) vs bare fork: (a) echo ${fmtRatio(node.echo, bare.echo)}, ` +
      `(b) md5 ${fmtRatio(node.md5, bare.md5)} (higher is better); ` +
      `(c) p50 ${fmtRatio(node.p50, bare.p50)} (lower is better)`);
  }
  if (rust) {
    const vs = [];
    if (bare) vs.push(`${fmtRatio(rust.md5, bare.md5)} bare fork`);
    if (node) vs.push(`${fmtRatio(rust.md5, node.md5)} comrade Pool (Node)`);
    ratios.push(`comrade Pool (Rust): (b) md5 ${fmtInt(rust.md5)} jobs/s` + (vs.length ? ` = ${vs.join(', ')}` : ''));
  }
  for (const kind of ['node', 'rust']) {
    const now = medians[`comrade-${kind}`];
    const base = medians[`comrade-${kind}-baseline`];
    if (now && base) {
      ratios.push(`comrade Pool (${kind === 'node' ? 'Node' : 'Rust'}) vs the baseline build (${BASELINE}): ` +
        `(a) echo ${fmtRatio(now.echo, base.echo)}, (b) md5 ${fmtRatio(now.md5, base.md5)} (higher is better); ` +
        `(c) p50 ${fmtRatio(now.p50, base.p50)} (lower is better)`);
    }
  }
  if (ratios.length) lines.push('', ...ratios);
  return lines.join('\n');
}

// ---------------------------------------------------------------------------

async function main() {
  const cfg = parseCli();
  const info = machineInfo();
  const cpu0 = cpuSnapshot();
  const { contenders, skipped } = loadContenders(cfg.only);
  if (process.env.COMRADE_BENCH_ONE === undefined) for (const s of skipped) console.error(s);
  if (contenders.length === 0) {
    if (cfg.only) {
      console.log('bench/pool.js: nothing to run for --only ' + (cfg.only.join(',') || '(compute-cluster only)'));
      return;
    }
    throw new Error('no contender to run');
  }

  const { raw, failures, perRound, medians } = await runRounds({
    rounds: cfg.rounds,
    contenders,
    workloads: WORKLOADS,
    metrics: ['echo', 'md5', 'p50', 'p99'],
    nameWidth: 12,
    measureOne: async (c, w, mine) => {
      const pool = c.create(w.id, cfg);
      try {
        return await w.measure(pool, cfg, mine);
      } finally {
        try {
          await closePool(pool);
        } catch (e) {
          mine.push(`pool error: ${errText(e)}`);
        }
      }
    },
  });
  info.othersCpu = othersCpuShare(cpu0, cpuSnapshot());

  console.log('');
  console.log(report(info, cfg, contenders, skipped, medians));

  if (cfg.json) {
    const out = {
      info,
      config: { ...cfg, poolSize: POOL_SIZE, echoCallers: ECHO_CALLERS, md5Callers: MD5_CALLERS, rustWorker: RUST_WORKER },
      skipped, rounds: raw, perRound, medians, failures,
    };
    fs.writeFileSync(cfg.json, JSON.stringify(out, null, 2) + '\n');
    console.log(`\nraw numbers written to ${cfg.json}`);
  }

  finish(failures);
}

main().catch((err) => {
  console.error(err && err.stack ? err.stack : err);
  process.exit(1);
});

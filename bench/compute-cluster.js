'use strict';
// Benchmark: comrade's ComputeCluster against npm compute-cluster@0.0.9 and a
// bare child_process.fork dispatcher, all with 2 workers, the same worker
// scripts and the same semantics (one job per worker at a time).
//
//   node bench/compute-cluster.js [--rounds N] [--json FILE] [--only LIST]
//        [--echo-jobs N] [--md5-jobs N] [--latency-jobs N]
//
// Workloads:
//   (a) echo: 16-byte string, 64 callers in flight, jobs/s
//   (b) md5 (luafan): 3072-byte payload, worker returns [payload, md5hex],
//       20 callers in flight, every digest checked by the parent, jobs/s
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
const ECHO_WORKER = path.join(__dirname, 'workers', 'echo.js');
const MD5_WORKER = path.join(__dirname, 'workers', 'md5.js');
const POOL_SIZE = 2;
const ECHO_CALLERS = 64;
const MD5_CALLERS = 20;
const WARMUP_JOBS = 500;
// A measurement that makes no progress for this long is a stall, not a slow run.
const STALL_MS = 30000;

const USAGE = `usage: node bench/compute-cluster.js [options]
  --rounds N         interleaved rounds, medians reported (default 5, minimum 3)
  --json FILE        also write the raw per-round numbers to FILE
  --only LIST        comma-separated subset of: compute-cluster,comrade,fork
  --echo-jobs N      jobs per (a) measurement (default 20000)
  --md5-jobs N       jobs per (b) measurement (default 10000)
  --latency-jobs N   sequential jobs per (c) measurement (default 5000)`;

const CONTENDER_NAMES = ['compute-cluster', 'comrade', 'fork'];
const CLI_OPTIONS = {
  rounds: { type: 'string', default: '5' },
  json: { type: 'string' },
  only: { type: 'string' },
  'echo-jobs': { type: 'string', default: '20000' },
  'md5-jobs': { type: 'string', default: '10000' },
  'latency-jobs': { type: 'string', default: '5000' },
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
  const only = values.only ? values.only.split(',').map((s) => s.trim()) : null;
  const unknown = (only || []).filter((name) => !CONTENDER_NAMES.includes(name));
  if (unknown.length) {
    console.error(`--only: unknown contender ${unknown.join(', ')}\n${USAGE}`);
    process.exit(2);
  }
  return {
    rounds: int('rounds', 3),
    json: values.json,
    only,
    echoJobs: int('echo-jobs', 100),
    md5Jobs: int('md5-jobs', 100),
    latencyJobs: int('latency-jobs', 100),
  };
}

// ---------------------------------------------------------------------------
// Contenders. Each `create(module, onError)` returns { enqueue(args, cb), exit(cb) }.

// Hand-rolled one-job-per-worker dispatcher over child_process.fork: what
// Node's own IPC gives with compute-cluster's semantics and nothing else.
class ForkPool {
  constructor(module, size, onError) {
    this.queue = [];
    this.free = [];
    this.slots = [];
    this.exiting = false;
    this.onError = onError;
    for (let i = 0; i < size; i++) {
      const slot = { child: fork(module), cb: null, exited: false };
      slot.child.on('message', (m) => this._reply(slot, m));
      slot.child.on('exit', (code, signal) => this._exit(slot, code, signal));
      this.slots.push(slot);
      this.free.push(slot);
    }
  }

  enqueue(args, cb) {
    this.queue.push({ args, cb });
    this._pump();
  }

  _pump() {
    while (this.queue.length > 0 && this.free.length > 0) {
      const slot = this.free.pop();
      const job = this.queue.shift();
      slot.cb = job.cb;
      slot.child.send(job.args);
    }
  }

  _reply(slot, m) {
    const cb = slot.cb;
    if (!cb) {
      this.onError(`reply from ${slot.child.pid} with no job in flight`);
      return;
    }
    // Same order as compute-cluster: free the worker, dispatch, then call back.
    slot.cb = null;
    this.free.push(slot);
    this._pump();
    cb(null, m);
  }

  _exit(slot, code, signal) {
    slot.exited = true;
    const msg = `worker ${slot.child.pid} exited (code ${code}, signal ${signal})`;
    if (slot.cb) {
      const cb = slot.cb;
      slot.cb = null;
      cb(msg);
    }
    if (!this.exiting) this.onError(msg);
    if (this.exiting && this.slots.every((s) => s.exited) && this.exitCb) {
      const done = this.exitCb;
      this.exitCb = null;
      done(null);
    }
  }

  exit(cb) {
    this.exiting = true;
    this.exitCb = cb;
    const alive = this.slots.filter((s) => !s.exited);
    if (alive.length === 0) {
      this.exitCb = null;
      setImmediate(() => cb(null));
      return;
    }
    for (const s of alive) s.child.kill();
  }
}

function computeClusterContender(name, label, ComputeCluster) {
  return {
    name,
    label,
    create(module, onError) {
      // max_backlog -1: the default (10 × 2 workers) would reject the 62
      // queued jobs of workload (a); we measure throughput, not admission.
      const cc = new ComputeCluster({ module, max_processes: POOL_SIZE, max_backlog: -1 });
      cc.on('error', (e) => onError(String(e)));
      return cc;
    },
  };
}

function loadContenders(only) {
  const contenders = [];
  const skipped = [];
  const want = (name) => !only || only.includes(name);

  if (want('compute-cluster')) {
    const version = require('compute-cluster/package.json').version;
    contenders.push(computeClusterContender('compute-cluster',
      `compute-cluster ${version} (npm)`, require('compute-cluster')));
  }
  if (want('comrade')) {
    if (!fs.existsSync(COMRADE_ENTRY)) {
      skipped.push(`comrade: SKIPPED, ${COMRADE_ENTRY} does not exist yet (engine not built)`);
    } else {
      // A present but broken entry point is a failure, not a skip.
      const { ComputeCluster } = require(COMRADE_ENTRY);
      if (typeof ComputeCluster !== 'function') {
        throw new Error(`${COMRADE_ENTRY} does not export a ComputeCluster class`);
      }
      contenders.push(computeClusterContender('comrade', 'comrade ComputeCluster', ComputeCluster));
    }
  }
  if (want('fork')) {
    contenders.push({
      name: 'fork',
      label: 'child_process.fork, bare',
      create: (module, onError) => new ForkPool(module, POOL_SIZE, onError),
    });
  }
  return { contenders, skipped };
}

// ---------------------------------------------------------------------------
// Workloads

const nowNs = () => process.hrtime.bigint();
const md5hex = (s) => crypto.createHash('md5').update(s).digest('hex');

// Distinct payload per job, so a reply delivered to the wrong job is caught.
const echoArgs = (i) => String(i).padStart(16, '0');
const checkEcho = (args, r) => (r === args ? null : `echo: sent ${JSON.stringify(args)}, got ${JSON.stringify(r)}`);

// luafan's payload 'abc'.repeat(1024) (3072 bytes), with the job number
// stamped over its first 8 bytes: same size, but every job is distinguishable.
const MD5_BASE = 'abc'.repeat(1024);
const md5Args = (i) => String(i).padStart(8, '0') + MD5_BASE.slice(8);
function checkMd5(args, r) {
  if (!Array.isArray(r) || r.length !== 2) return `md5: malformed reply ${JSON.stringify(r).slice(0, 80)}`;
  const want = md5hex(args);
  if (r[0] !== args) return `md5: payload mismatch for job ${args.slice(0, 8)} (got ${String(r[0]).slice(0, 8)}...)`;
  if (r[1] !== want) return `md5: digest mismatch for job ${args.slice(0, 8)}: want ${want}, got ${r[1]}`;
  return null;
}

// `callers` independent callers, each enqueueing its next job when its
// previous one completes, until `jobs` jobs are done. Resolves with seconds.
function closedLoop(pool, { jobs, callers, makeArgs, check, failures }) {
  return new Promise((resolve, reject) => {
    let issued = 0;
    let done = 0;
    let lastDone = -1;
    const start = nowNs();
    const watchdog = setInterval(() => {
      if (done === lastDone) {
        clearInterval(watchdog);
        reject(new Error(`stalled: ${done}/${jobs} jobs done, no progress for ${STALL_MS} ms`));
      }
      lastDone = done;
    }, STALL_MS);
    const next = () => {
      const args = makeArgs(issued++);
      pool.enqueue(args, (err, result) => {
        if (err) failures.push(`error: ${err}`);
        else {
          const bad = check(args, result);
          if (bad) failures.push(bad);
        }
        done++;
        if (done === jobs) {
          clearInterval(watchdog);
          resolve(Number(nowNs() - start) / 1e9);
        } else if (issued < jobs) {
          next();
        }
      });
    };
    for (let c = 0; c < Math.min(callers, jobs); c++) next();
  });
}

// One job in flight; returns the sorted per-job round trips in µs.
function sequential(pool, { jobs, failures }) {
  const samples = new Float64Array(jobs);
  return new Promise((resolve, reject) => {
    let i = 0;
    const timer = setTimeout(() => reject(new Error(`stalled: ${i}/${jobs} sequential jobs`)), STALL_MS);
    const next = () => {
      const args = echoArgs(i);
      const t0 = nowNs();
      pool.enqueue(args, (err, result) => {
        samples[i] = Number(nowNs() - t0) / 1e3;
        if (err) failures.push(`error: ${err}`);
        else {
          const bad = checkEcho(args, result);
          if (bad) failures.push(bad);
        }
        if (++i === jobs) {
          clearTimeout(timer);
          resolve(samples.sort());
        } else {
          next();
        }
      });
    };
    next();
  });
}

// Nearest-rank percentile of sorted samples.
const percentile = (sorted, p) => sorted[Math.max(0, Math.ceil(p * sorted.length) - 1)];


const WORKLOADS = [
  {
    id: 'echo',
    module: ECHO_WORKER,
    async measure(pool, cfg, failures) {
      const spec = { callers: ECHO_CALLERS, makeArgs: echoArgs, check: checkEcho, failures };
      await closedLoop(pool, { ...spec, jobs: WARMUP_JOBS });
      const seconds = await closedLoop(pool, { ...spec, jobs: cfg.echoJobs });
      return { echo: cfg.echoJobs / seconds };
    },
  },
  {
    id: 'md5',
    module: MD5_WORKER,
    async measure(pool, cfg, failures) {
      const spec = { callers: MD5_CALLERS, makeArgs: md5Args, check: checkMd5, failures };
      await closedLoop(pool, { ...spec, jobs: WARMUP_JOBS });
      const seconds = await closedLoop(pool, { ...spec, jobs: cfg.md5Jobs });
      return { md5: cfg.md5Jobs / seconds };
    },
  },
  {
    id: 'latency',
    module: ECHO_WORKER,
    async measure(pool, cfg, failures) {
      // Concurrent warm-up so a lazily spawning pool has started both workers.
      await closedLoop(pool, { jobs: WARMUP_JOBS, callers: ECHO_CALLERS, makeArgs: echoArgs, check: checkEcho, failures });
      await sequential(pool, { jobs: WARMUP_JOBS, failures });
      const sorted = await sequential(pool, { jobs: cfg.latencyJobs, failures });
      return { p50: percentile(sorted, 0.5), p99: percentile(sorted, 0.99) };
    },
  },
];

function exitPool(pool) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('exit() did not call back within 10 s')), 10000);
    pool.exit(() => {
      clearTimeout(timer);
      resolve();
    });
  });
}

// ---------------------------------------------------------------------------
// Report

function report(info, cfg, contenders, skipped, medians) {
  const lines = [];
  lines.push(`Node ${info.node} | ${info.cpu} | ${info.cores} cores | ${info.platform}` +
    (info.commit ? ` | comrade @ ${info.commit}` : ''));
  lines.push(`${POOL_SIZE} workers per pool, medians of ${cfg.rounds} interleaved rounds; ` +
    `(a) ${cfg.echoJobs} jobs, (b) ${cfg.md5Jobs} jobs, (c) ${cfg.latencyJobs} jobs`);
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
  const cr = medians.comrade;
  if (cr) {
    lines.push('');
    for (const [name, label] of [['compute-cluster', 'compute-cluster'], ['fork', 'bare fork']]) {
      const o = medians[name];
      if (!o) continue;
      lines.push(`comrade vs ${label}: (a) ${fmtRatio(cr.echo, o.echo)}, (b) ${fmtRatio(cr.md5, o.md5)} ` +
        `(higher is better); (c) p50 ${fmtRatio(cr.p50, o.p50)} (lower is better)`);
    }
  }
  return lines.join('\n');
}

// ---------------------------------------------------------------------------

async function main() {
  const cfg = parseCli();
  const info = machineInfo();
  const cpu0 = cpuSnapshot();
  const { contenders, skipped } = loadContenders(cfg.only);
  if (process.env.COMRADE_BENCH_ONE === undefined) for (const s of skipped) console.error(s);
  if (contenders.length === 0) throw new Error('no contender to run');

  const { raw, failures, perRound, medians } = await runRounds({
    rounds: cfg.rounds,
    contenders,
    workloads: WORKLOADS,
    metrics: ['echo', 'md5', 'p50', 'p99'],
    nameWidth: 15,
    measureOne: async (c, w, mine) => {
      const pool = c.create(w.module, (e) => mine.push(`pool error: ${e}`));
      try {
        return await w.measure(pool, cfg, mine);
      } finally {
        await exitPool(pool);
      }
    },
  });
  info.othersCpu = othersCpuShare(cpu0, cpuSnapshot());

  console.log('');
  console.log(report(info, cfg, contenders, skipped, medians));

  if (cfg.json) {
    const out = { info, config: { ...cfg, poolSize: POOL_SIZE, echoCallers: ECHO_CALLERS, md5Callers: MD5_CALLERS },
      skipped, rounds: raw, perRound, medians, failures };
    fs.writeFileSync(cfg.json, JSON.stringify(out, null, 2) + '\n');
    console.log(`\nraw numbers written to ${cfg.json}`);
  }

  finish(failures);
}

main().catch((err) => {
  console.error(err && err.stack ? err.stack : err);
  process.exit(1);
});

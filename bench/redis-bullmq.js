'use strict';
// comrade over Redis against BullMQ on the same Redis (issue 13, Benchmark): 1 producer, 2
// worker hosts and one redis-server on loopback (started here on a free port, without
// persistence, stopped after). Workloads: echo, and md5 (a 3072-byte payload returned with its
// md5, the luafan workload of bench/pool.js). Per workload: jobs/s with every job submitted at
// once, and the p50/p99 latency (submit to result) of jobs sent one after another.
//
//   node bench/redis-bullmq.js [--rounds 3] [--jobs 10000] [--latency-jobs 500]
//                              [--concurrency 16] [--warmup 200] [--stats] [--json FILE]
//
// Fairness: each host is one process per contender ("2 workers": comrade's host runs 1 Node
// worker, `--workers 1`; a BullMQ host is one Worker whose processor runs in its own process),
// with the same concurrency (jobs at once per host). BullMQ gets its fastest paths: addBulk for
// the burst, completions counted from QueueEvents, removeOnComplete/removeOnFail. Each
// contender's measurement runs in a fresh process (its producer and its two hosts are new),
// the contenders alternate over rounds, Redis is flushed between runs, and the table gives the
// medians. `--stats` prints the CPU per job of each role (producer, Redis, hosts, their
// workers; from /proc) and Redis's INFO commandstats per contender: commands per job.
//
// Needs redis-server (Debian's package) and a release build (bash scripts/build.sh release).

const { spawn, spawnSync } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const net = require('node:net');
const path = require('node:path');
const { parseArgs } = require('node:util');

const { values } = parseArgs({
  options: {
    rounds: { type: 'string', default: '3' },
    jobs: { type: 'string', default: '10000' },
    'latency-jobs': { type: 'string', default: '500' },
    concurrency: { type: 'string', default: '16' },
    // Echo jobs each contender runs before it is measured (its processes are fresh): a larger
    // warm-up measures compiled code rather than V8's compilation of it.
    warmup: { type: 'string', default: '200' },
    stats: { type: 'boolean', default: false },
    json: { type: 'string' },
    only: { type: 'string' }, // comrade | bullmq: run one contender
    // Internal: a measurement process, or a BullMQ host.
    child: { type: 'string' },
    'bull-host': { type: 'boolean', default: false },
    url: { type: 'string' },
    'redis-pid': { type: 'string' },
  },
});
const JOBS = Number(values.jobs);
const LATENCY_JOBS = Number(values['latency-jobs']);
const CONCURRENCY = Number(values.concurrency);
const WARMUP = Number(values.warmup);
const ROUNDS = Number(values.rounds);
const QUEUE = 'bench';
const WORKER = path.join(__dirname, 'workers', 'pool-node.js');
const BIN = path.join(__dirname, '..', 'bin', 'comrade.js');
const PAYLOAD = 'x'.repeat(3072);
const WORKLOADS = ['echo', 'md5'];

function sleep(ms) {
  return new Promise((r) => { setTimeout(r, ms); });
}

function pct(sorted, p) {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))];
}

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

function freePort() {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

function cli(port, ...args) {
  const r = spawnSync('redis-cli', ['-p', String(port), ...args], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`redis-cli ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

// Spawns `argv` and resolves once its stderr (or stdout) matches `ready`.
function spawnReady(argv, ready) {
  const child = spawn(process.execPath, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
  child.out = '';
  const exited = new Promise((r) => child.once('exit', r));
  child.exited = exited;
  return new Promise((resolve, reject) => {
    const on = (d) => {
      child.out += d;
      if (ready.test(child.out)) resolve(child);
    };
    child.stdout.on('data', on);
    child.stderr.on('data', on);
    exited.then((code) => reject(new Error(`${argv.join(' ')} exited (${code}) before it was ready:\n${child.out}`)));
  });
}

async function stopAll(children) {
  for (const c of children) if (c.exitCode === null) c.kill('SIGTERM');
  await Promise.all(children.map((c) => c.exited));
}

// CPU seconds (user + system) a process has used; NaN once it is gone.
function cpuOf(pid) {
  try {
    const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return (Number(f[11]) + Number(f[12])) / 100;
  } catch {
    return NaN;
  }
}

// The processes of one run, by role: this producer, Redis, the hosts, the hosts' children
// (comrade's local workers; BullMQ's hosts have none).
function roles(hosts) {
  // Children of any of its threads (comrade's engine spawns workers from its own threads).
  const children = (pid) => {
    try {
      return fs.readdirSync(`/proc/${pid}/task`).flatMap((tid) => fs.readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8')
        .trim().split(/\s+/).filter(Boolean).map(Number));
    } catch {
      return [];
    }
  };
  return {
    redis: values['redis-pid'] ? [Number(values['redis-pid'])] : [],
    hosts: hosts.map((h) => h.pid),
    workers: hosts.flatMap((h) => children(h.pid)),
  };
}

// CPU per job (µs) of each role over `fn`, which runs `n` jobs.
async function cpuPerJob(hosts, n, fn) {
  const r = roles(hosts);
  const sum = (pids) => pids.reduce((a, p) => a + cpuOf(p), 0);
  const before = Object.fromEntries(Object.entries(r).map(([k, pids]) => [k, sum(pids)]));
  const u0 = process.cpuUsage();
  await fn();
  const u = process.cpuUsage(u0);
  const out = { producer: (u.user + u.system) / n };
  for (const [k, pids] of Object.entries(r)) out[k] = ((sum(pids) - before[k]) * 1e6) / n;
  return out;
}

// Throughput: `n` jobs at once; latency: `LATENCY_JOBS` one after another.
async function measure(hosts, burst, one) {
  const out = {};
  for (const w of WORKLOADS) {
    const t0 = process.hrtime.bigint();
    const cpu = await cpuPerJob(hosts, JOBS, () => burst(w, JOBS));
    const s = Number(process.hrtime.bigint() - t0) / 1e9;
    const lat = [];
    for (let i = 0; i < LATENCY_JOBS; i++) {
      const a = process.hrtime.bigint();
      await one(w, i);
      lat.push(Number(process.hrtime.bigint() - a) / 1e6);
    }
    lat.sort((a, b) => a - b);
    out[w] = { jobsPerSec: JOBS / s, p50: pct(lat, 0.5), p99: pct(lat, 0.99), cpu };
  }
  return out;
}

function checkMd5(r) {
  if (!Array.isArray(r) || r[1] !== crypto.createHash('md5').update(r[0]).digest('hex')) {
    throw new Error(`wrong md5 result: ${JSON.stringify(r).slice(0, 80)}`);
  }
}

// --- comrade: a producer, two `comrade worker` hosts ---
async function childComrade(url) {
  const { Pool } = require('..');
  const hosts = await Promise.all([0, 1].map((i) => spawnReady([BIN, 'worker', '--redis', url, '--queue', QUEUE,
    '--module', WORKER, '--workers', '1', '--concurrency', String(CONCURRENCY), '--name', `host${i}`], /takes jobs/)));
  const pool = new Pool({ redis: url, queue: QUEUE });
  try {
    // Warm-up: both hosts' workers started.
    await Promise.all(Array.from({ length: WARMUP }, (_, i) => pool.run(i)));
    const job = (w, i) => (w === 'echo' ? pool.run(i) : pool.call('md5', PAYLOAD));
    return await measure(hosts, async (w, n) => {
      const rs = await Promise.all(Array.from({ length: n }, (_, i) => job(w, i)));
      if (w === 'echo') { if (rs[n - 1] !== n - 1) throw new Error('wrong echo result'); } else checkMd5(rs[n - 1]);
    }, async (w, i) => {
      const r = await job(w, i);
      if (w === 'md5') checkMd5(r);
    });
  } finally {
    await pool.close();
    await stopAll(hosts);
  }
}

// --- BullMQ: a Queue and QueueEvents, two hosts each one Worker ---
function bullConnection(url) {
  const u = new URL(url);
  return { host: u.hostname, port: Number(u.port) };
}

async function bullHost(url) {
  const { Worker } = require('bullmq');
  const worker = new Worker(QUEUE, async (job) => (job.name === 'md5'
    ? [job.data, crypto.createHash('md5').update(job.data).digest('hex')]
    : job.data), { connection: bullConnection(url), concurrency: CONCURRENCY });
  await worker.waitUntilReady();
  process.stdout.write('bull host ready\n');
  process.once('SIGTERM', () => { worker.close().then(() => process.exit(0)); });
}

async function childBull(url) {
  const { Queue, QueueEvents } = require('bullmq');
  const hosts = await Promise.all([0, 1].map(() => spawnReady([__filename, '--bull-host', '--url', url,
    '--concurrency', String(CONCURRENCY)], /bull host ready/)));
  const connection = bullConnection(url);
  // Every job writes a few events: the stream must keep them until QueueEvents read them.
  const queue = new Queue(QUEUE, { connection, streams: { events: { maxLen: 20 * JOBS + 10000 } } });
  const events = new QueueEvents(QUEUE, { connection });
  const opts = { removeOnComplete: true, removeOnFail: true };
  try {
    await queue.waitUntilReady();
    await events.waitUntilReady();
    // Results by job id, from QueueEvents: a job may finish before add() returns its id.
    const waiters = new Map(); // job id -> resolve
    const early = new Map(); // job id -> return value, finished before anyone waited
    let failed = null;
    events.on('completed', ({ jobId, returnvalue }) => {
      const w = waiters.get(jobId);
      if (w === undefined) {
        early.set(jobId, returnvalue);
      } else {
        waiters.delete(jobId);
        w(returnvalue);
      }
    });
    events.on('failed', ({ jobId, failedReason }) => { failed = new Error(`job ${jobId} failed: ${failedReason}`); });
    const result = (id) => new Promise((resolve) => {
      if (early.has(id)) {
        const v = early.get(id);
        early.delete(id);
        resolve(v);
      } else {
        waiters.set(id, resolve);
      }
    }).then((v) => (typeof v === 'string' ? JSON.parse(v) : v));
    const burst = async (w, n) => {
      const done = [];
      for (let start = 0; start < n; start += 1000) {
        const batch = [];
        for (let i = start; i < Math.min(n, start + 1000); i++) {
          batch.push({ name: w, data: w === 'echo' ? i : PAYLOAD, opts });
        }
        const jobs = await queue.addBulk(batch);
        for (const j of jobs) done.push(result(j.id));
      }
      const rs = await Promise.all(done);
      if (failed) throw failed;
      const last = rs[n - 1];
      if (w === 'echo') { if (last !== n - 1) throw new Error(`wrong echo result ${last}`); } else checkMd5(last);
    };
    await burst('echo', WARMUP); // warm-up
    return await measure(hosts, burst, async (w, i) => {
      const j = await queue.add(w, w === 'echo' ? i : PAYLOAD, opts);
      const r = await result(j.id);
      if (failed) throw failed;
      if (w === 'md5') checkMd5(r);
    });
  } finally {
    await events.close();
    await queue.close();
    await stopAll(hosts);
  }
}

// --- the orchestrator ---
function commandStats(port) {
  const out = {};
  for (const line of cli(port, 'INFO', 'commandstats').split('\n')) {
    const m = /^cmdstat_([^:]+):calls=(\d+),usec=(\d+)/.exec(line.trim());
    if (m) out[m[1]] = { calls: Number(m[2]), usec: Number(m[3]) };
  }
  return out;
}

async function main() {
  const port = await freePort();
  const redis = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '',
    '--appendonly', 'no'], { stdio: 'ignore' });
  const url = `redis://127.0.0.1:${port}`;
  const results = { comrade: [], bullmq: [] };
  const stats = { comrade: [], bullmq: [] };
  try {
    for (let i = 0; ; i++) {
      try { cli(port, 'PING'); break; } catch (e) { if (i > 100) throw e; await sleep(100); }
    }
    const contenders = values.only ? [values.only] : ['comrade', 'bullmq'];
    for (let r = 0; r < ROUNDS; r++) {
      const order = r % 2 === 0 ? contenders : [...contenders].reverse();
      for (const c of order) {
        cli(port, 'FLUSHALL');
        cli(port, 'CONFIG', 'RESETSTAT');
        const p = await spawnReady([__filename, '--child', c, '--url', url, '--redis-pid', String(redis.pid), '--jobs', String(JOBS),
          '--latency-jobs', String(LATENCY_JOBS), '--concurrency', String(CONCURRENCY), '--warmup', String(WARMUP)],
        /^RESULT /m);
        await p.exited;
        const line = /^RESULT (.*)$/m.exec(p.out)[1];
        const res = JSON.parse(line);
        results[c].push(res);
        stats[c].push(commandStats(port));
        console.error(`round ${r + 1} ${c}: ${WORKLOADS.map((w) => `${w} ${Math.round(res[w].jobsPerSec)}/s ` +
          `p50 ${res[w].p50.toFixed(2)} p99 ${res[w].p99.toFixed(2)}`).join(', ')}`);
      }
    }
  } finally {
    redis.kill('SIGKILL');
  }
  const { machineInfo } = require('./common');
  const m = machineInfo();
  console.log(`Redis queue, 1 producer, 2 hosts (1 process each), concurrency ${CONCURRENCY}; ${JOBS} jobs ` +
    `per burst, ${LATENCY_JOBS} sequential jobs for latency, ${WARMUP} warm-up jobs; medians of ${ROUNDS} rounds`);
  console.log(`node ${m.node}, ${m.cpu}, ${m.cores} cores, commit ${m.commit}`);
  console.log('| workload | contender | jobs/s | p50 (ms) | p99 (ms) |');
  console.log('|---|---|---|---|---|');
  const table = [];
  for (const w of WORKLOADS) {
    const med = {};
    for (const c of Object.keys(results)) {
      if (results[c].length === 0) continue;
      med[c] = {
        jobsPerSec: median(results[c].map((x) => x[w].jobsPerSec)),
        p50: median(results[c].map((x) => x[w].p50)),
        p99: median(results[c].map((x) => x[w].p99)),
      };
      table.push({ workload: w, contender: c, ...med[c] });
      console.log(`| ${w} | ${c} | ${Math.round(med[c].jobsPerSec)} | ${med[c].p50.toFixed(2)} | ${med[c].p99.toFixed(2)} |`);
    }
    if (med.comrade && med.bullmq) {
      console.log(`| ${w} | comrade / BullMQ | ${(med.comrade.jobsPerSec / med.bullmq.jobsPerSec).toFixed(2)}x | ` +
        `${(med.comrade.p50 / med.bullmq.p50).toFixed(2)}x | ${(med.comrade.p99 / med.bullmq.p99).toFixed(2)}x |`);
    }
  }
  if (values.stats) {
    // Per job of one run: 2 bursts + 2 latency series + warm-up.
    const perRun = 2 * JOBS + 2 * LATENCY_JOBS + WARMUP;
    for (const c of Object.keys(stats)) {
      if (stats[c].length === 0) continue;
      const s = stats[c][stats[c].length - 1];
      const rows = Object.entries(s).sort((a, b) => b[1].usec - a[1].usec);
      const calls = rows.reduce((a, [, v]) => a + v.calls, 0);
      const usec = rows.reduce((a, [, v]) => a + v.usec, 0);
      const cpu = WORKLOADS.map((w) => {
        const m = (k) => median(results[c].map((x) => x[w].cpu[k]));
        const parts = ['producer', 'redis', 'hosts', 'workers'].map((k) => `${k} ${Math.round(m(k))}`);
        const total = ['producer', 'redis', 'hosts', 'workers'].reduce((a, k) => a + m(k), 0);
        return `${w}: ${Math.round(total)} (${parts.join(', ')})`;
      });
      console.log(`\n${c}: CPU µs per job of the bursts, every process of a role summed, medians: ${cpu.join('; ')}`);
      console.log(`${c}: ${(calls / perRun).toFixed(2)} Redis commands and ${(usec / perRun).toFixed(1)} µs of ` +
        'Redis time per job (last round)');
      for (const [k, v] of rows.slice(0, 12)) {
        console.log(`  ${k}: ${(v.calls / perRun).toFixed(3)} calls/job, ${(v.usec / perRun).toFixed(2)} µs/job`);
      }
    }
  }
  if (values.json) fs.writeFileSync(values.json, JSON.stringify({ machine: m, table, results, stats }, null, 2));
}

if (values['bull-host']) {
  bullHost(values.url).catch((e) => { console.error(e); process.exit(1); });
} else if (values.child) {
  (values.child === 'bullmq' ? childBull(values.url) : childComrade(values.url)).then((res) => {
    process.stdout.write(`RESULT ${JSON.stringify(res)}\n`);
    process.exit(0);
  }, (e) => { console.error(e); process.exit(1); });
} else {
  main().catch((e) => { console.error(e); process.exitCode = 1; });
}

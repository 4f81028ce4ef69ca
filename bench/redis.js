'use strict';
// One queue on Redis: 1 producer, 2 worker hosts (`comrade worker`, each 2 Node workers) and
// one redis-server, all on loopback. Measures echo and md5 (3072-byte payload, the luafan
// workload of bench/pool.js) jobs per second with every job submitted at once, and the
// latency (submit to settle) of jobs sent one after another at a bounded rate.
//
//   node bench/redis.js [--jobs N] [--latency-jobs N] [--concurrency C]
//
// Needs redis-server (Debian's redis-server package). Uses whatever addon is built (scripts/
// build.sh release for numbers worth comparing). bench/redis-bullmq.js compares with BullMQ.

const { spawn } = require('node:child_process');
const net = require('node:net');
const path = require('node:path');
const { parseArgs } = require('node:util');
const { Pool } = require('..');
const { machineInfo } = require('./common');

const { values } = parseArgs({
  options: {
    jobs: { type: 'string', default: '20000' },
    'latency-jobs': { type: 'string', default: '2000' },
    concurrency: { type: 'string', default: '16' },
  },
});
const JOBS = Number(values.jobs);
const LATENCY_JOBS = Number(values['latency-jobs']);
const CONCURRENCY = Number(values.concurrency);
const WORKER = path.join(__dirname, 'workers', 'pool-node.js');
const BIN = path.join(__dirname, '..', 'bin', 'comrade.js');
const PAYLOAD = 'x'.repeat(3072);

function freePort() {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

async function waitFor(cond) {
  for (let i = 0; i < 600; i++) {
    if (await cond()) return;
    await new Promise((r) => { setTimeout(r, 100); });
  }
  throw new Error('timed out');
}

function pct(sorted, p) {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))];
}

async function main() {
  const port = await freePort();
  const redis = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
  const url = `redis://127.0.0.1:${port}`;
  const hosts = [];
  try {
    await waitFor(() => new Promise((resolve) => {
      const c = net.connect(port, '127.0.0.1', () => { c.destroy(); resolve(true); });
      c.on('error', () => resolve(false));
    }));
    for (let i = 0; i < 2; i++) {
      const h = spawn(process.execPath, [BIN, 'worker', '--redis', url, '--queue', 'bench', '--module', WORKER,
        '--workers', '2', '--concurrency', String(CONCURRENCY)], { stdio: ['ignore', 'ignore', 'pipe'] });
      h.out = '';
      h.stderr.on('data', (d) => { h.out += d; });
      hosts.push(h);
    }
    await waitFor(() => hosts.every((h) => /takes jobs/.test(h.out)));
    const pool = new Pool({ redis: url, queue: 'bench' });
    // Warm-up: every host's workers started.
    await Promise.all(Array.from({ length: 200 }, (_, i) => pool.run(i)));

    const rows = [];
    for (const [name, job] of [['echo', (i) => pool.run(i)], ['md5', () => pool.call('md5', PAYLOAD)]]) {
      const t0 = process.hrtime.bigint();
      await Promise.all(Array.from({ length: JOBS }, (_, i) => job(i)));
      const s = Number(process.hrtime.bigint() - t0) / 1e9;
      // Latency: one job at a time, so that it measures the round trip, not the queue.
      const lat = [];
      for (let i = 0; i < LATENCY_JOBS; i++) {
        const a = process.hrtime.bigint();
        await job(i);
        lat.push(Number(process.hrtime.bigint() - a) / 1e6);
      }
      lat.sort((a, b) => a - b);
      rows.push({ name, jobsPerSec: JOBS / s, p50: pct(lat, 0.5), p99: pct(lat, 0.99) });
    }
    await pool.close();
    const m = machineInfo();
    console.log(`comrade over Redis: 1 producer, 2 hosts x 2 Node workers x concurrency ${CONCURRENCY}, ` +
      `${JOBS} jobs per throughput run, ${LATENCY_JOBS} sequential jobs for latency`);
    console.log(`node ${m.node}, ${m.cpu}, ${m.cores} cores, commit ${m.commit}`);
    console.log('| workload | jobs/s | p50 latency (ms) | p99 latency (ms) |');
    console.log('|---|---|---|---|');
    for (const r of rows) {
      console.log(`| ${r.name} | ${Math.round(r.jobsPerSec)} | ${r.p50.toFixed(2)} | ${r.p99.toFixed(2)} |`);
    }
  } finally {
    for (const h of hosts) h.kill('SIGTERM');
    await Promise.all(hosts.map((h) => new Promise((r) => { if (h.exitCode !== null) r(); else h.once('exit', r); })));
    redis.kill('SIGKILL');
  }
}

main().catch((e) => {
  console.error(e);
  process.exitCode = 1;
});

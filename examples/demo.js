'use strict';
// comrade demo: an Express server with a CPU-heavy route, served three ways.
//
//   /hash/pool?seed=S&n=N    runs sha256Chain(S, N) on a comrade ComputeCluster
//   /hash/modern?seed=S&n=N  runs it on a comrade Pool (pool.call('sha256Chain', S, N))
//   /hash/inline?seed=S&n=N  runs it on the server's own event loop
//   /ping                    trivial route, stands in for every other request
//   /status                  the Pool's live status page (pool.statusHandler()), while the demo runs
//   /metrics                 the Pool's Prometheus metrics (pool.metrics())
//
// A built-in load generator (in a worker thread, so a blocked server loop
// cannot stall the client's clock) hammers one heavy route at a time with a
// few keep-alive clients while it pings /ping, and the server measures its own
// event-loop delay. Every heavy response is checked against a digest the load
// generator computed itself. Only 127.0.0.1 traffic; exits when done.
//
//   node examples/demo.js [--seconds S] [--clients C] [--n N]
//                         [--pool comrade|compute-cluster]
// `--pool compute-cluster` runs the same server on npm compute-cluster, to
// show the drop-in; the default is comrade.

const path = require('node:path');
const { isMainThread, Worker, parentPort, workerData } = require('node:worker_threads');
const { sha256Chain } = require('./sha256-chain.js');

const SEEDS = 16; // distinct requests, so a reply for the wrong request shows
const PING_EVERY_MS = 10;
const LOOP_RESOLUTION_MS = 2;

if (isMainThread) {
  main().catch((err) => {
    // Usage mistakes get one line; anything else gets its stack.
    const usage = err && (err.code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION' || /^--/.test(err.message));
    console.error(usage ? `${err.message}\nusage: node examples/demo.js [--seconds S] [--clients C] [--n N] ` +
      '[--pool comrade|compute-cluster]' : (err && err.stack) || err);
    process.exit(1);
  });
} else {
  loadGenerator(workerData).then((result) => parentPort.postMessage({ type: 'done', result }));
}

// ---------------------------------------------------------------------------
// The server side: what an application would write.

function loadPool(which) {
  if (which === 'compute-cluster') {
    return { ComputeCluster: require('compute-cluster'), label: 'npm compute-cluster' };
  }
  const entry = path.join(__dirname, '..', 'index.js');
  try {
    require.resolve(entry);
  } catch {
    console.error(`comrade is not built: ${entry} is missing. Run scripts/demo.sh, ` +
      'or `node examples/demo.js --pool compute-cluster` to see the same demo on npm compute-cluster.');
    process.exit(1);
  }
  const { ComputeCluster, Pool } = require(entry);
  return { ComputeCluster, Pool, label: 'comrade ComputeCluster' };
}

function buildApp(cc, pool) {
  const express = require('express');
  const app = express();

  const jobOf = (req, res) => {
    const seed = String(req.query.seed ?? '0');
    const n = Number(req.query.n ?? 3000);
    if (!Number.isInteger(n) || n < 1 || n > 1e6) {
      res.status(400).json({ error: 'n must be an integer in 1..1000000' });
      return null;
    }
    return { seed, n };
  };

  app.get('/ping', (req, res) => {
    res.send('pong');
  });

  // The work leaves the event loop: the route only waits for the callback.
  app.get('/hash/pool', (req, res) => {
    const job = jobOf(req, res);
    if (!job) return;
    cc.enqueue(job, (err, digest) => {
      // Backlog full, worker died, ...: compute-cluster passes error strings.
      if (err) res.status(503).json({ error: String(err) });
      else res.json({ digest });
    });
  });

  // The same work through the modern Pool: a named function of a plain module, a Promise.
  if (pool) {
    app.get('/hash/modern', async (req, res) => {
      const job = jobOf(req, res);
      if (!job) return;
      try {
        res.json({ digest: await pool.call('sha256Chain', job.seed, job.n) });
      } catch (err) {
        // err.code says why: ERR_BACKLOG_FULL, ERR_WORKER_EXITED, ...
        res.status(503).json({ error: err.message, code: err.code });
      }
    });
  }

  // Watching the pool: a live page (JSON with ?format=json) and Prometheus metrics.
  if (pool) {
    app.get('/status', pool.statusHandler());
    app.get('/metrics', (req, res) => res.type(pool.constructor.METRICS_CONTENT_TYPE).send(pool.metrics()));
  }

  // The same work on the event loop: nothing else runs until it is done.
  app.get('/hash/inline', (req, res) => {
    const job = jobOf(req, res);
    if (!job) return;
    res.json({ digest: sha256Chain(job.seed, job.n) });
  });

  return app;
}

async function main() {
  const os = require('node:os');
  const { parseArgs } = require('node:util');
  const { monitorEventLoopDelay } = require('node:perf_hooks');

  const { values } = parseArgs({
    options: {
      seconds: { type: 'string', default: '4' },
      clients: { type: 'string', default: '8' },
      n: { type: 'string', default: '3000' },
      pool: { type: 'string', default: 'comrade' },
    },
  });
  if (!['comrade', 'compute-cluster'].includes(values.pool)) {
    throw new Error('--pool must be comrade or compute-cluster');
  }
  const seconds = Number(values.seconds);
  const clients = Number(values.clients);
  const n = Number(values.n);
  if (!(seconds > 0 && seconds <= 60) || !(clients >= 1 && clients <= 64) || !(n >= 1 && n <= 1e6)) {
    throw new Error('--seconds must be in (0, 60], --clients in 1..64, --n in 1..1000000');
  }

  const { ComputeCluster, Pool, label } = loadPool(values.pool);
  const cores = os.availableParallelism();
  // One worker per core: more processes cannot make CPU-bound work faster.
  const cc = new ComputeCluster({ module: path.join(__dirname, 'hash-worker.js'), max_processes: cores });
  cc.on('error', (e) => console.error(`pool error: ${e}`));
  // The modern Pool runs sha256-chain.js itself (it exports sha256Chain), all workers warm.
  const pool = Pool && new Pool({
    module: path.join(__dirname, 'sha256-chain.js'), minWorkers: cores, maxWorkers: cores, name: 'demo',
  });

  const app = buildApp(cc, pool);
  const server = await new Promise((resolve, reject) => {
    const s = app.listen(0, '127.0.0.1', (err) => (err ? reject(err) : resolve(s)));
  });
  const { port } = server.address();
  if (pool) console.log(`status page: http://127.0.0.1:${port}/status (up while the demo runs)\n`);

  // Size of one job, timed here before any load (after one run to warm up).
  sha256Chain('warm-up', n);
  const t0 = process.hrtime.bigint();
  sha256Chain('calibrate', n);
  const jobMs = Number(process.hrtime.bigint() - t0) / 1e6;

  // Start the workers before measuring, as a long-running server would have.
  await Promise.all(Array.from({ length: cores }, (_, i) =>
    new Promise((resolve, reject) => cc.enqueue({ seed: `warm${i}`, n: 1 }, (err) => (err ? reject(new Error(err)) : resolve())))));

  if (pool) await Promise.all(Array.from({ length: cores }, (_, i) => pool.call('sha256Chain', `warm${i}`, 1)));

  const variants = [
    { name: `pool (${label})`, path: '/hash/pool' },
    ...(pool ? [{ name: 'pool (comrade Pool)', path: '/hash/modern' }] : []),
    { name: 'inline (on the event loop)', path: '/hash/inline' },
  ];
  const rows = [];
  for (const v of variants) {
    const loop = monitorEventLoopDelay({ resolution: LOOP_RESOLUTION_MS });
    // Sample the loop only while the load runs, not while the generator
    // computes its expected digests (an idle loop would dilute the figures).
    const load = await runLoad({ port, path: v.path, seconds, clients, n }, () => loop.enable());
    loop.disable();
    // The histogram records the time between timer ticks; minus the tick
    // itself, that is how late the loop was.
    const late = (p) => Math.max(0, loop.percentile(p) / 1e6 - LOOP_RESOLUTION_MS);
    rows.push({ ...v, ...load, loopP50: late(50), loopP99: late(99), loopMax: loop.max / 1e6 - LOOP_RESOLUTION_MS });
  }

  // Close everything; no timers, sockets or workers are left to keep node up.
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
  await new Promise((resolve) => cc.exit(resolve));
  if (pool) await pool.close();

  printReport({ port, cores, n, jobMs, seconds, clients, rows });
  const bad = rows.reduce((sum, r) => sum + r.wrong + r.errors, 0);
  if (bad > 0) {
    console.log(`\nFAILED: ${bad} heavy responses were wrong or failed`);
    for (const r of rows) for (const e of r.samples) console.log(`  ${r.path}: ${e}`);
    process.exitCode = 1;
  }
}

function runLoad(params, onStart) {
  return new Promise((resolve, reject) => {
    const w = new Worker(__filename, { workerData: params });
    w.on('message', (m) => (m.type === 'start' ? onStart() : resolve(m.result)));
    w.once('error', reject);
  });
}

function printReport({ port, cores, n, jobMs, seconds, clients, rows }) {
  const f1 = (x) => x.toFixed(1);
  console.log(`comrade demo: Express on 127.0.0.1:${port}, Node ${process.version}, ${cores} cores, pool of ${cores} workers`);
  console.log(`heavy job: ${n} rounds of sha256 (≈ ${f1(jobMs)} ms); load: ${clients} clients on the heavy route ` +
    `+ 1 on /ping every ${PING_EVERY_MS} ms, ${seconds} s per variant\n`);
  console.log('| variant | heavy req/s | heavy ok | /ping p50 ms | /ping p99 ms | loop delay p50 ms | loop delay p99 ms |');
  console.log('|---|---:|---:|---:|---:|---:|---:|');
  for (const r of rows) {
    console.log(`| ${r.name} | ${f1(r.rps)} | ${r.ok}/${r.ok + r.wrong + r.errors} | ${f1(r.pingP50)} | ${f1(r.pingP99)} ` +
      `| ${f1(r.loopP50)} | ${f1(r.loopP99)} |`);
  }
  const inline = rows[rows.length - 1];
  console.log('');
  for (const pool of rows.slice(0, -1)) {
    console.log(`${pool.name} vs inline: ${(pool.rps / inline.rps).toFixed(2)}× the heavy throughput, ` +
      `/ping p99 ${f1(pool.pingP99)} ms instead of ${f1(inline.pingP99)} ms, ` +
      `worst loop stall ${f1(pool.loopMax)} ms instead of ${f1(inline.loopMax)} ms.`);
  }
}

// ---------------------------------------------------------------------------
// The load generator (worker thread).

async function loadGenerator({ port, path: route, seconds, clients, n }) {
  const http = require('node:http');

  // Expected answers, computed here, independently of the server and its pool.
  const expected = Array.from({ length: SEEDS }, (_, s) => sha256Chain(`s${s}`, n));

  const heavyAgent = new http.Agent({ keepAlive: true, maxSockets: clients });
  const pingAgent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const get = (agent, urlPath) => new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path: urlPath, agent }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk) => { body += chunk; });
      res.on('end', () => resolve({ status: res.statusCode, body }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });

  parentPort.postMessage({ type: 'start' });
  const stats = { ok: 0, wrong: 0, errors: 0, samples: [] };
  const note = (msg) => { if (stats.samples.length < 5) stats.samples.push(msg); };
  const start = performance.now();
  const deadline = start + seconds * 1000;
  let lastDone = start;
  let next = 0;

  async function heavyClient() {
    while (performance.now() < deadline) {
      const s = next++ % SEEDS;
      try {
        const { status, body } = await get(heavyAgent, `${route}?seed=s${s}&n=${n}`);
        const digest = status === 200 ? JSON.parse(body).digest : undefined;
        if (digest === expected[s]) stats.ok++;
        else {
          stats.wrong++;
          note(`seed s${s}: HTTP ${status} ${body.slice(0, 120)}`);
        }
      } catch (err) {
        stats.errors++;
        note(`seed s${s}: ${err.message}`);
      }
      lastDone = performance.now();
    }
  }

  const pings = [];
  async function pinger() {
    while (performance.now() < deadline) {
      const t = performance.now();
      await get(pingAgent, '/ping');
      pings.push(performance.now() - t);
      await new Promise((resolve) => setTimeout(resolve, PING_EVERY_MS));
    }
  }

  await Promise.all([pinger(), ...Array.from({ length: clients }, heavyClient)]);
  heavyAgent.destroy();
  pingAgent.destroy();

  pings.sort((a, b) => a - b);
  const pct = (p) => pings[Math.max(0, Math.ceil(p * pings.length) - 1)];
  return {
    ...stats,
    rps: (stats.ok + stats.wrong) / ((lastDone - start) / 1000),
    pingP50: pct(0.5),
    pingP99: pct(0.99),
  };
}

// pool.metrics(): Prometheus text (format 0.0.4) read back with the official Prometheus client's
// text parser (Python's prometheus_client, through __test__/prom-parse.py), and its counters checked against stats() and the pool's events after a run with every
// outcome: answers, thrown errors, timeouts, aborts, rejections, a crash that is retried and
// a worker killed with SIGKILL.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import {
  Pool, codes, fixture, openPool, entries, errorOf, rejectsWith, waitFor, TEST,
} from './pool-helpers.mjs';

const require = createRequire(import.meta.url);
const promClient = require('prom-client');

const OUTCOMES = ['ok', 'error', 'timeout', 'aborted', 'rejected', 'coalesced'];

const PARSER = path.join(import.meta.dirname, 'prom-parse.py');

// The text as the parser reads it (it fails on malformed text): { type(family), samples(name) }.
function parse(text) {
  let out;
  try {
    out = execFileSync('/usr/bin/python3', [PARSER], { input: text, encoding: 'utf8', stdio: 'pipe' });
  } catch (e) {
    throw new Error(`the Prometheus parser refused the text (or is missing: Debian's python3-prometheus-client, ` +
      `which .ci/run installs): ${e.stderr}\n${text}`);
  }
  const families = JSON.parse(out);
  const names = families.map((f) => f.name);
  assert.equal(new Set(names).size, names.length, 'each family once');
  return {
    type: (family) => families.find((f) => f.name === family)?.type,
    samples: (name) => families.flatMap((f) => f.samples).filter((x) => x.name === name),
  };
}

const sum = (samples, pred = () => true) =>
  samples.filter((x) => pred(x.labels)).reduce((a, x) => a + x.value, 0);

test('metrics() after errors, timeouts, aborts, rejections, a retried crash and a SIGKILL add up against stats()', TEST, async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'comrade-metrics-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const { pool, log } = openPool(t, {
    module: fixture('observe.js'), name: 'obs "1"\\', maxWorkers: 2, cancelGraceMs: 0,
  });
  assert.equal(pool.name, 'obs "1"\\');
  const jobs = [];
  // 7 answers: 5 of the default function, 2 of `ok`.
  for (let i = 0; i < 5; i++) jobs.push(pool.run(i));
  jobs.push(pool.call('ok', 1), pool.exec('ok', [2]));
  // 3 thrown errors.
  for (let i = 0; i < 3; i++) jobs.push(errorOf(pool.call('fail', `boom ${i}`)));
  // 2 timeouts.
  jobs.push(rejectsWith(pool.exec('hang', [], { timeout: 50 }), codes.JOB_TIMEOUT));
  jobs.push(rejectsWith(pool.run(null, { name: 'hang', timeout: 50 }), codes.JOB_TIMEOUT));
  // 2 rejected before they reach the engine (a function cannot be sent).
  jobs.push(rejectsWith(pool.exec('ok', [() => 1]), codes.UNSERIALIZABLE));
  jobs.push(rejectsWith(pool.run(Symbol('x')), codes.UNSERIALIZABLE));
  // 1 aborted before the call, 1 while running.
  jobs.push(rejectsWith(pool.exec('ok', [1], { signal: AbortSignal.abort() }), codes.ABORTED));
  const ac = new AbortController();
  let started;
  const onRun = new Promise((resolve) => { started = resolve; });
  jobs.push(rejectsWith(pool.exec('hang', [], { signal: ac.signal, onProgress: started }), codes.ABORTED));
  await onRun;
  ac.abort();
  // 1 crash, retried: it answers the second time.
  jobs.push(pool.exec('crashOnce', [path.join(dir, 'crashed')], { retries: 1 }));
  await Promise.all(jobs);
  // 1 worker killed with SIGKILL while it runs a job.
  let victim;
  const pidKnown = new Promise((resolve) => { victim = resolve; });
  const killed = errorOf(pool.exec('hang', [], { onProgress: victim }));
  process.kill(await pidKnown, 'SIGKILL');
  assert.equal((await killed).code, codes.WORKER_EXITED);
  await waitFor(() => entries(log, 'workerExit').length >= 5, 'the five exits');

  const stats = pool.stats();
  const m = parse(pool.metrics());
  assert.equal(m.type('comrade_jobs'), 'counter');
  const jobsTotal = m.samples('comrade_jobs_total');
  const byOutcome = Object.fromEntries(OUTCOMES.map((o) => [o, sum(jobsTotal, (l) => l.outcome === o)]));
  assert.deepEqual(byOutcome, { ok: 8, error: 4, timeout: 2, aborted: 2, rejected: 2, coalesced: 0 });
  // The same as stats(), where every settled job is in one total.
  assert.deepEqual(byOutcome, {
    ok: stats.completed, error: stats.errored + stats.failed - stats.timedOut, timeout: stats.timedOut,
    aborted: stats.aborted, rejected: stats.rejected, coalesced: stats.coalesced,
  });
  // Every series has the pool label, escaped and read back.
  assert.ok(jobsTotal.every((x) => x.labels.pool === 'obs "1"\\'));
  // Per function: the jobs that named one.
  const fn = (name, outcome) => sum(jobsTotal, (l) => l.function === name && l.outcome === outcome);
  assert.equal(fn('ok', 'ok'), 2);
  assert.equal(fn('ok', 'rejected'), 1);
  assert.equal(fn('ok', 'aborted'), 1);
  assert.equal(fn('fail', 'error'), 3);
  assert.equal(fn('hang', 'timeout'), 2);
  assert.equal(fn('hang', 'aborted'), 1);
  assert.equal(fn('hang', 'error'), 1, 'the SIGKILLed job');
  assert.equal(fn('crashOnce', 'ok'), 1);
  // The default function's jobs have no function label: 5 answers, 1 rejection.
  const unnamed = (o) => sum(jobsTotal, (l) => l.function === undefined && l.outcome === o);
  assert.deepEqual(OUTCOMES.map(unnamed), [5, 0, 0, 0, 1, 0]);

  // Histograms: cumulative buckets ending in +Inf = count; one run per answered job.
  for (const name of ['comrade_job_wait_seconds', 'comrade_job_run_seconds']) {
    assert.equal(m.type(name), 'histogram');
    const buckets = m.samples(`${name}_bucket`);
    assert.equal(buckets.at(-1).labels.le, '+Inf');
    assert.equal(buckets.length, 17);
    const le = buckets.map((b) => Number(b.labels.le.replace('+Inf', 'Infinity')));
    assert.ok(le.every((b, i) => i === 0 || b > le[i - 1]), `${name} bounds ascend`);
    const counts = buckets.map((b) => b.value);
    assert.ok(counts.every((c, i) => i === 0 || c >= counts[i - 1]), `${name} buckets are cumulative`);
    assert.equal(counts.at(-1), m.samples(`${name}_count`)[0].value);
    assert.ok(m.samples(`${name}_sum`)[0].value > 0);
  }
  const runs = m.samples('comrade_job_run_seconds_count')[0].value;
  assert.equal(runs, stats.completed + stats.errored, 'every answer is one run observation');
  // Every job that reached a worker waited once per attempt (the crashed one twice).
  const waits = m.samples('comrade_job_wait_seconds_count')[0].value;
  assert.ok(waits >= runs + 2 + 1 + 1 + 1, `waits ${waits}`);

  // Exits by reason, as the workerExit events said.
  const exits = m.samples('comrade_worker_exits_total');
  const exitEvents = entries(log, 'workerExit').map((e) => e[1].reason);
  assert.equal(exits.length, 9, 'every reason, zeros too');
  for (const x of exits) {
    assert.equal(x.value, exitEvents.filter((r) => r === x.labels.reason).length, x.labels.reason);
  }
  assert.equal(sum(exits, (l) => l.reason === 'crash'), 2, 'crashOnce and the SIGKILL');
  assert.equal(sum(exits, (l) => l.reason === 'timeout'), 2);
  assert.equal(sum(exits, (l) => l.reason === 'aborted'), 1);
  assert.equal(m.samples('comrade_retries_total')[0].value, 1);
  assert.equal(stats.retried, 1);
  assert.equal(m.samples('comrade_queue_depth')[0].value, 0);
  assert.equal(m.type('comrade_workers'), 'gauge');
  const workers = m.samples('comrade_workers');
  assert.equal(sum(workers), stats.workers.length);
  assert.deepEqual(workers.map((x) => x.labels.state).sort(), ['busy', 'idle', 'starting', 'stopping']);
});

test('metrics(): queue and total timeouts count as timeouts, callers that joined a shared job as coalesced', TEST, async (t) => {
  const { pool } = openPool(t, { module: fixture('observe.js'), name: 'deadlines', maxWorkers: 1, cancelGraceMs: 0 });
  await pool.run(0);
  // The only worker hangs: a job behind it waits past its queueTimeout; another is not settled
  // within its totalTimeout; three callers share one `key`, the last two joining.
  const hang = errorOf(pool.exec('hang', [], { timeout: 2000 }));
  const queued = errorOf(pool.run(1, { queueTimeout: 20 }));
  const total = errorOf(pool.run(2, { totalTimeout: 30 }));
  assert.equal((await queued).code, codes.QUEUE_TIMEOUT);
  assert.equal((await total).code, codes.TOTAL_TIMEOUT);
  assert.equal((await hang).code, codes.JOB_TIMEOUT);
  const shared = await Promise.all([0, 1, 2].map(() => pool.exec('sleep', [1], { key: 'k' })));
  assert.deepEqual(shared, [1, 1, 1]);
  const stats = pool.stats();
  const jobsTotal = parse(pool.metrics()).samples('comrade_jobs_total');
  const byOutcome = Object.fromEntries(OUTCOMES.map((o) => [o, sum(jobsTotal, (l) => l.outcome === o)]));
  assert.deepEqual(byOutcome, { ok: 2, error: 0, timeout: 3, aborted: 0, rejected: 0, coalesced: 2 });
  assert.equal(stats.queueTimedOut + stats.totalTimedOut + stats.timedOut, 3);
  assert.equal(sum(jobsTotal, (l) => l.function === 'sleep' && l.outcome === 'coalesced'), 2);
});

test('gauges follow the queue and the workers while jobs wait', TEST, async (t) => {
  const { pool } = openPool(t, { module: fixture('observe.js'), maxWorkers: 1, name: 'g' });
  let started;
  const running = new Promise((resolve) => { started = resolve; });
  const hung = errorOf(pool.exec('hang', [], { onProgress: started }));
  const queued = [pool.call('ok', 1), pool.call('ok', 2), pool.call('ok', 3)];
  queued.forEach((p) => p.catch(() => {}));
  await running;
  const m = parse(pool.metrics());
  assert.equal(m.samples('comrade_queue_depth')[0].value, 3);
  assert.equal(m.samples('comrade_jobs_in_flight')[0].value, 1);
  assert.equal(sum(m.samples('comrade_workers'), (l) => l.state === 'busy'), 1);
  assert.equal(m.samples('comrade_queue_depth')[0].labels.pool, 'g');
  await pool.terminate();
  await hung;
});

test('Pool.metrics([a, b]): one HELP and TYPE per metric, both pools\' samples; prom-client text merges', TEST, async (t) => {
  const { pool: a } = openPool(t, { module: fixture('observe.js'), maxWorkers: 1, name: 'a' });
  const { pool: b } = openPool(t, { module: fixture('observe.js'), maxWorkers: 1 });
  assert.equal(b.name, 'default');
  await a.call('ok', 1);
  await Promise.all([b.run(1), b.run(2)]);
  const text = Pool.metrics([a, b]);
  assert.equal(text.match(/^# TYPE comrade_jobs_total counter$/gm).length, 1);
  const m = parse(text);
  const ok = m.samples('comrade_jobs_total').filter((x) => x.labels.outcome === 'ok' && x.value > 0);
  assert.deepEqual(ok.map((x) => [x.labels.pool, x.labels.function, x.value]),
    [['a', 'ok', 1], ['default', undefined, 2]]);
  assert.deepEqual(m.samples('comrade_job_run_seconds_count').map((x) => [x.labels.pool, x.value]),
    [['a', 1], ['default', 2]]);
  // The README's recipe: an application's prom-client registry and the pools in one scrape.
  const registry = new promClient.Registry();
  new promClient.Counter({ name: 'app_requests_total', help: 'Requests.', registers: [registry] }).inc(3);
  const merged = parse(await registry.metrics() + Pool.metrics([a, b]));
  assert.equal(merged.samples('app_requests_total')[0].value, 3);
  assert.equal(merged.samples('comrade_queue_depth').length, 2);
  assert.equal(Pool.METRICS_CONTENT_TYPE, 'text/plain; version=0.0.4; charset=utf-8');
  assert.equal(registry.contentType.split(';')[0], 'text/plain');
  // Anything but pools is refused with a clear error.
  for (const bad of [[], [{}], null, 'a', [a, {}]]) {
    assert.throws(() => Pool.metrics(bad), { code: codes.INVALID_ARGUMENT, message: /non-empty array of Pools/ });
    assert.throws(() => Pool.statusHandler(bad), { code: codes.INVALID_ARGUMENT });
  }
});

test('the name option must be a string', () => {
  assert.throws(() => new Pool({ module: fixture('observe.js'), name: 3 }), {
    code: codes.INVALID_OPTION, message: 'comrade Pool: name must be a string',
  });
});

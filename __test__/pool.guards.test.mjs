// Guards: behaviours whose breakage once passed the whole JS suite (issue 15, "a suite that
// fails fast"). Each test fails by an assertion, never by a generic timeout: killGraceMs is
// honoured; no job runs again after terminate(); the pool never shrinks below minWorkers; a
// lone run timeout fires without another event to wake the engine; the engine drops a
// duplicate reply from a native worker; one AbortSignal's listener goes with its last job;
// a ComputeCluster worker's extra replies never reach another job. No timing claims: where a
// bound is needed it is an ordering against a marker timer far past the deadline.
import assert from 'node:assert/strict';
import { getEventListeners } from 'node:events';
import path from 'node:path';
import test from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { Harness, fixture as ccFixture } from './cc-helpers.mjs';
import {
  TEST, entries, errorOf, fixture, openPool, settleAll, waitFor,
} from './pool-helpers.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const work = path.join(here, 'fixtures', 'manage', 'work.js');
const exits = (log) => entries(log, 'workerExit').map((e) => e[1]);

/** 'first' if `promise` settles before a marker timer of `ms`, else 'marker'. */
async function before(promise, ms) {
  let timer;
  const marker = new Promise((resolve) => {
    timer = setTimeout(resolve, ms, 'marker');
  });
  const settled = Promise.resolve(promise).then(() => 'first', () => 'first');
  return Promise.race([settled, marker]).finally(() => clearTimeout(timer));
}

test('killGraceMs: terminate() SIGKILLs a worker that ignores SIGTERM after killGraceMs, not the default 5 s', TEST, async (t) => {
  const { pool, log } = openPool(t, { module: fixture('stubborn.js'), maxWorkers: 1, killGraceMs: 50 });
  const pid = await pool.call('pid');
  // The marker is far past killGraceMs and well short of the 5000 ms default.
  assert.equal(await before(pool.terminate(), 3000), 'first', 'terminate() waited for the default grace, not killGraceMs');
  await waitFor(() => exits(log).some((e) => e.pid === pid), 'the workerExit event');
  assert.equal(exits(log).find((e) => e.pid === pid).signal, 'SIGKILL');
});

test('killGraceMs 0: a worker that ignores SIGTERM is killed at once', TEST, async (t) => {
  const { pool, log } = openPool(t, { module: fixture('stubborn.js'), maxWorkers: 1, killGraceMs: 0 });
  const pid = await pool.call('pid');
  assert.equal(await before(pool.close(), 3000), 'first', 'close() waited for a grace period');
  assert.equal(exits(log).find((e) => e.pid === pid).signal, 'SIGKILL');
});

test('terminate(): a running job with retries left is not run again on a new worker', TEST, async (t) => {
  const { pool, log, spawned } = openPool(t, { module: work, maxWorkers: 1, retries: 3 });
  const job = errorOf(pool.run({ ms: 1500, v: 'must not run again' }, { name: 'slow', retries: 3 }));
  // Its worker's workerSpawn event too: stats() can show the job running before the event
  // that reports the spawn has been delivered.
  await waitFor(() => pool.stats().workers.some((w) => w.state === 'busy') && spawned.length === 1,
    'the job to start');
  const spawnedBefore = spawned.length;
  await pool.terminate();
  const err = await job;
  assert.equal(err.code, 'ERR_POOL_TERMINATED', `${err.code}: ${err.message}`);
  // Long enough for a re-run to have started and finished.
  await delay(2000);
  assert.equal(spawned.length, spawnedBefore, `a worker was spawned after terminate(): ${JSON.stringify(log)}`);
  assert.deepEqual(pool.pids, []);
  assert.equal(pool.stats().completed, 0, 'the job completed after terminate()');
});

test('minWorkers: idle stops never take the pool below the minimum', TEST, async (t) => {
  // maxRss (far above any worker) makes the engine's housekeeping run every second, so idle
  // checks also run while the pool is at its minimum.
  const { pool, log, spawned } = openPool(t, {
    module: work, minWorkers: 2, maxWorkers: 3, idleTimeout: 100, spawnDelay: 0, maxRss: 2 ** 40,
  });
  const results = await Promise.all(Array.from({ length: 6 }, (_, i) => pool.call('slow', 150, i)));
  assert.equal(new Set(results.map((r) => r.pid)).size, 3, 'the pool grew to three');
  await waitFor(() => exits(log).length >= 1, 'the surplus worker to stop');
  // Many idle periods (and two housekeeping rounds) later, exactly one worker has stopped.
  await delay(2500);
  assert.equal(exits(log).length, 1, `stopped below minWorkers: ${JSON.stringify(exits(log))}`);
  assert.equal(pool.pids.length, 2);
  assert.equal(spawned.length, 3, 'no worker was stopped and replaced');
});

test('minWorkers: a worker that dies while idle is replaced without new work', TEST, async (t) => {
  const { pool, log, spawned } = openPool(t, { module: work, minWorkers: 2, maxWorkers: 2 });
  await waitFor(() => spawned.length === 2, 'the two warm workers');
  process.kill(spawned[0], 'SIGKILL');
  await waitFor(() => exits(log).length === 1, 'the workerExit event');
  await waitFor(() => pool.pids.length === 2, 'the pool to get back to minWorkers');
  assert.equal(spawned.length, 3);
});

test('a lone job with a timeout fails on its deadline, with no other event to wake the engine', TEST, async (t) => {
  const { pool } = openPool(t, { module: work, maxWorkers: 1 });
  await pool.call('pid'); // a started worker, so the startup allowance plays no part
  const job = errorOf(pool.run(null, { name: 'loop', timeout: 200 }));
  // Nothing else happens in the pool; the marker is thirty deadlines later.
  assert.equal(await before(job, 6000), 'first', 'the timeout fired only when something else woke the engine');
  assert.equal((await job).code, 'ERR_JOB_TIMEOUT');
});

test("a native worker's duplicate and late replies are dropped by the engine: each job gets its own", TEST, async (t) => {
  const { pool, log } = openPool(t, { command: [process.execPath, fixture('dup-reply-native.js')], maxWorkers: 1 });
  // One at a time: each duplicate of job N arrives while job N+1 is in flight.
  for (let i = 0; i < 5; i++) {
    const r = await pool.run(`a${i}`);
    assert.equal(r.arg, `a${i}`, `job ${i} got another job's reply: ${JSON.stringify(r)}`);
  }
  // Many at once (concurrency 1, so they queue on the one worker).
  const jobs = Array.from({ length: 20 }, (_, i) => [i, pool.run(`b${i}`)]);
  const settled = await settleAll(jobs, 20000);
  settled.forEach((s, i) => {
    assert.equal(s.status, 'fulfilled', s.reason && s.reason.message);
    assert.equal(s.value.arg, `b${i}`);
  });
  assert.equal(entries(log, 'protocolError').length, 0, 'a duplicate is not a protocol error');
  assert.equal(entries(log, 'workerSpawn').length, 1, 'the worker is kept');
  const s = pool.stats();
  assert.equal(s.completed, 25);
  assert.equal(s.errored, 0, 'a late error reply settled nothing');
});

test('AbortSignal: shared by jobs that settle every way, its listener goes with the last of them', TEST, async (t) => {
  const { pool } = openPool(t, { module: work, maxWorkers: 2, timeout: 10000 });
  const ac = new AbortController();
  const other = new AbortController();
  const count = () => getEventListeners(ac.signal, 'abort').length;
  const jobs = [
    pool.call('echo', 1),
    pool.run('boom', { name: 'fail', signal: ac.signal }),
    pool.run({ ms: 20, v: 'ok' }, { name: 'slow', signal: ac.signal }),
    pool.run(null, { name: 'loop', signal: ac.signal, timeout: 100 }),
    pool.run({ ms: 30000 }, { name: 'slow', signal: other.signal }),
  ];
  assert.equal(count(), 1, 'one listener for three jobs');
  const settled = jobs.slice(1, 4);
  const r = await settleAll(settled, 20000);
  assert.deepEqual(r.map((x) => x.status), ['rejected', 'fulfilled', 'rejected']);
  assert.equal(r[2].reason.code, 'ERR_JOB_TIMEOUT');
  assert.equal(count(), 0, 'the listener outlived its jobs');
  other.abort();
  assert.equal((await errorOf(jobs[4])).code, 'ABORT_ERR');
  assert.equal(getEventListeners(other.signal, 'abort').length, 0);
  await jobs[0];
  // A job added later gets a listener again, and an abort removes it.
  const late = errorOf(pool.run({ ms: 30000 }, { name: 'slow', signal: ac.signal }));
  assert.equal(count(), 1);
  ac.abort('stop');
  assert.equal((await late).code, 'ABORT_ERR');
  assert.equal(count(), 0);
});

test('ComputeCluster: a worker that answers twice never gives one job another job\'s reply', TEST, async (t) => {
  const h = new Harness(t, { module: ccFixture('double-reply.js'), max_processes: 2, max_backlog: -1 });
  const recs = Array.from({ length: 30 }, (_, i) => h.job({ i }, i));
  await settleAll(recs.map((r) => [r.tag, r.done]), 20000, 'ComputeCluster jobs');
  // Extra replies are dropped or reported; a late one must never become a result.
  await delay(200);
  for (const r of recs) {
    assert.equal(r.calls.length, 1, `job ${r.tag} was called back ${r.calls.length} times`);
    const [err, result] = r.calls[0].args;
    assert.equal(err, null);
    assert.deepEqual(result, { v: { i: r.tag }, n: 1 }, `job ${r.tag} got ${JSON.stringify(result)}`);
  }
  assert.deepEqual(h.errors, []);
});

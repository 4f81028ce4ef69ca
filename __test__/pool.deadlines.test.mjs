// Queue and total timeouts (issue 10, items 3 and 4). A job that waits for a worker longer than
// its queueTimeout rejects with ERR_QUEUE_TIMEOUT and never runs; one not settled within its
// totalTimeout rejects with ERR_TOTAL_TIMEOUT, withdrawn from the queue or cancelled where it
// runs (as after an abort: cancel, then a kill after cancelGraceMs). The worker is held by a
// gate the test opens only after the deadline fired, so nothing depends on timing.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import test from 'node:test';
import {
  TEST, entries, errorOf, fixture, openPool, rejectsWith, waitFor, Pool,
} from './pool-helpers.mjs';

const mod = fixture('deadlines.js');
const NONE = { queueTimeout: Infinity, totalTimeout: Infinity };

// A pool of one worker, warm, busy with a gate job; `open()` opens the gate.
async function busyPool(t, options = {}) {
  const opened = openPool(t, { module: mod, maxWorkers: 1, ...options });
  const { pool } = opened;
  const pid = await pool.exec('pid', [], NONE);
  const blocker = pool.exec('gate', ['blocker'], NONE);
  return {
    ...opened,
    pid,
    open: async () => {
      process.kill(pid, 'SIGUSR2');
      assert.equal(await blocker, 'blocker');
    },
  };
}

test('queueTimeout: a job that waits too long rejects with ERR_QUEUE_TIMEOUT, never runs, and the pool emits queueTimeout', TEST, async (t) => {
  const { pool, open } = await busyPool(t);
  const events = [];
  pool.on('queueTimeout', (e) => events.push(e));
  const late = errorOf(pool.exec('tag', ['late'], { queueTimeout: 30 }));
  const lateRun = errorOf(pool.run('late-run', { name: 'tag', queueTimeout: 30 }));
  const patient = pool.exec('tag', ['patient']);
  const err = await late;
  assert.equal(err.code, 'ERR_QUEUE_TIMEOUT', err.message);
  assert.ok(err.waitedMs >= 30, `waited ${err.waitedMs} ms`);
  assert.equal((await lateRun).code, 'ERR_QUEUE_TIMEOUT');
  assert.deepEqual(events.map((e) => e.name), ['tag', 'tag']);
  assert.ok(events.every((e) => e.waitedMs >= 30));
  assert.equal(pool.stats().queueTimedOut, 2);
  assert.equal(pool.stats().queued, 1, 'only the patient job still waits');
  await open();
  assert.equal(await patient, 'patient');
  assert.deepEqual(await pool.exec('ran', []), ['patient'], 'the late jobs never ran');
});

test('queueTimeout as a pool default; a job may lift it with Infinity', TEST, async (t) => {
  const { pool, open } = await busyPool(t, { queueTimeout: 30 });
  const byDefault = rejectsWith(pool.exec('tag', ['default']), 'ERR_QUEUE_TIMEOUT');
  const lifted = pool.exec('tag', ['lifted'], { queueTimeout: Infinity });
  await byDefault;
  await open();
  assert.equal(await lifted, 'lifted');
  assert.deepEqual(await pool.exec('ran', [], NONE), ['lifted']);
});

test('totalTimeout on a waiting job: withdrawn with ERR_TOTAL_TIMEOUT, never runs', TEST, async (t) => {
  const { pool, open } = await busyPool(t, { totalTimeout: 40 });
  const events = [];
  pool.on('totalTimeout', (e) => events.push(e));
  const err = await errorOf(pool.exec('tag', ['withdrawn']));
  assert.equal(err.code, 'ERR_TOTAL_TIMEOUT', err.message);
  assert.equal(err.pid, null, 'it never reached a worker');
  assert.deepEqual(events, [{ name: 'tag', pid: null }]);
  assert.equal(pool.stats().totalTimedOut, 1);
  await open();
  assert.deepEqual(await pool.exec('ran', [], NONE), []);
});

const tmp = (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'comrade-deadlines-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  return (name) => path.join(dir, name);
};

test('totalTimeout on a running job: cancelled like an abort, the worker stops it and serves on', TEST, async (t) => {
  const file = tmp(t);
  const { pool, log } = openPool(t, { module: fixture('cancel.js'), maxWorkers: 1 });
  const pid = await pool.call('pid');
  const err = await errorOf(pool.run(file('cancelled'), { name: 'cooperative', totalTimeout: 150 }));
  assert.equal(err.code, 'ERR_TOTAL_TIMEOUT', err.message);
  assert.equal(err.pid, pid, 'it was running on that worker');
  await waitFor(() => fs.existsSync(file('cancelled')), 'the job to see its signal');
  assert.equal(await pool.call('pid'), pid, 'the same worker serves the next job');
  assert.equal(entries(log, 'workerExit').length, 0);
});

test('totalTimeout on a running job that ignores its signal: its worker is killed after cancelGraceMs and replaced', TEST, async (t) => {
  const { pool, log } = openPool(t, { module: fixture('cancel.js'), maxWorkers: 1, cancelGraceMs: 100 });
  const pid = await pool.call('pid');
  const err = await rejectsWith(pool.run(null, { name: 'stubborn', totalTimeout: 150 }), 'ERR_TOTAL_TIMEOUT');
  assert.equal(err.pid, pid);
  await waitFor(() => entries(log, 'workerExit').length === 1, 'the worker to be killed');
  const exit = entries(log, 'workerExit')[0][1];
  assert.deepEqual([exit.pid, exit.signal, exit.reason], [pid, 'SIGKILL', 'timeout']);
  assert.notEqual(await pool.call('pid'), pid);
});

test('totalTimeout spans retries: a job retried after its worker died still ends with ERR_TOTAL_TIMEOUT', TEST, async (t) => {
  const file = tmp(t);
  const { pool } = openPool(t, { module: fixture('cancel.js'), maxWorkers: 1, cancelGraceMs: 0 });
  await pool.call('pid');
  const pids = [];
  const job = errorOf(pool.run(file('never'), {
    name: 'waitFile', retries: 3, totalTimeout: 3000, onProgress: (p) => pids.push(p),
  }));
  await waitFor(() => pids.length === 1, 'the first attempt to start');
  process.kill(pids[0], 'SIGKILL');
  const err = await job;
  assert.equal(err.code, 'ERR_TOTAL_TIMEOUT', err.message);
  assert.equal(pool.stats().retried, 1, 'retried once, then timed out (never retried again)');
});

test('bad queueTimeout / totalTimeout: ERR_INVALID_ARGUMENT per job, ERR_INVALID_OPTION for the pool', TEST, async (t) => {
  const { pool } = openPool(t, { module: mod, maxWorkers: 1 });
  for (const name of ['queueTimeout', 'totalTimeout']) {
    for (const v of [NaN, -1, 0, -Infinity, '50', null, 2 ** 33]) {
      await rejectsWith(pool.exec('tag', ['x'], { [name]: v }), 'ERR_INVALID_ARGUMENT');
      await rejectsWith(pool.run('x', { name: 'tag', [name]: v }), 'ERR_INVALID_ARGUMENT');
      assert.throws(() => new Pool({ module: mod, [name]: v }), { code: 'ERR_INVALID_OPTION' },
        `${name}: ${v}`);
    }
  }
  assert.deepEqual(await pool.exec('ran', []), [], 'no refused job ran');
});

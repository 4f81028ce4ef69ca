// Cooperative cancellation (issue 14, point 2): an abort or a timeout sends the worker
// `cancel`; the job's place on the worker stays taken until the worker answers; a worker that
// does not answer within cancelGraceMs is killed, and only then do its other jobs retry or fail.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import {
  TEST, entries, errorOf, fixture, openPool, rejectsWith, waitFor,
} from './pool-helpers.mjs';

const tmp = (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'comrade-cancel-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  return (name) => path.join(dir, name);
};

/** Starts `name` with a signal and resolves once it reported its pid (it runs). */
async function started(pool, name, args, options = {}) {
  let pid;
  const ac = new AbortController();
  const job = errorOf(pool.run(args, { name, signal: ac.signal, onProgress: (p) => { pid = p; }, ...options }));
  await waitFor(() => pid !== undefined, `${name} to start`);
  return { ac, job, pid: () => pid };
}

test('concurrency 2: aborting one job leaves the worker alive and its other job succeeds', TEST, async (t) => {
  const file = tmp(t);
  const { pool, log } = openPool(t, { module: fixture('cancel.js'), maxWorkers: 1, concurrency: 2 });
  let siblingPid;
  const sibling = pool.run(file('go'), { name: 'waitFile', onProgress: (p) => { siblingPid = p; } });
  const a = await started(pool, 'cooperative', file('a-aborted'));
  await waitFor(() => siblingPid !== undefined, 'the sibling to start');
  a.ac.abort(new Error('client hung up'));
  const err = await a.job;
  assert.equal(err.name, 'AbortError');
  assert.equal(err.cause.message, 'client hung up');
  // The worker saw the cancel through its signal.
  await waitFor(() => fs.existsSync(file('a-aborted')), 'the job to see its signal');
  assert.equal(fs.readFileSync(file('a-aborted'), 'utf8'), 'AbortError');
  fs.writeFileSync(file('go'), '');
  assert.equal(await sibling, a.pid(), 'the sibling finished on the same worker');
  assert.deepEqual(pool.pids, [a.pid()]);
  assert.equal(entries(log, 'workerExit').length, 0, 'no worker was killed');
  assert.equal(await pool.call('pid'), a.pid());
});

test('a cancelled job keeps its place until the worker answers it (concurrency 1)', TEST, async (t) => {
  const file = tmp(t);
  const { pool, log } = openPool(t, { module: fixture('cancel.js'), maxWorkers: 1, concurrency: 1 });
  const a = await started(pool, 'cooperative', { marker: file('a-aborted'), release: file('release') });
  a.ac.abort();
  assert.equal((await a.job).name, 'AbortError', 'the caller is told at once');
  await waitFor(() => fs.existsSync(file('a-aborted')), 'the job to see its signal');
  // The worker still runs the cancelled job: the next job waits for that place.
  const next = pool.call('sees', file('release'));
  assert.equal(pool.stats().workers[0].jobsInFlight, 1);
  fs.writeFileSync(file('release'), '');
  assert.equal(await next, true, 'the next job started only after the cancelled one answered');
  assert.deepEqual(pool.pids, [a.pid()]);
  assert.equal(entries(log, 'workerExit').length, 0);
});

test('a job that ignores its signal: killed after cancelGraceMs, then its sibling fails (no retries)', TEST, async (t) => {
  const file = tmp(t);
  const { pool, log } = openPool(t, {
    module: fixture('cancel.js'), maxWorkers: 1, concurrency: 2, cancelGraceMs: 200,
  });
  const order = [];
  pool.on('workerExit', () => order.push('exit'));
  const sibling = errorOf(pool.call('waitFile', file('never')).finally(() => order.push('sibling')));
  const a = await started(pool, 'stubborn', null);
  a.ac.abort();
  assert.equal((await a.job).name, 'AbortError');
  order.push('aborted');
  const err = await sibling;
  assert.equal(err.code, 'ERR_WORKER_EXITED', err.message);
  assert.equal(err.signal, 'SIGKILL');
  assert.deepEqual(order, ['aborted', 'exit', 'sibling']);
  const exits = entries(log, 'workerExit');
  assert.equal(exits.length, 1);
  assert.equal(exits[0][1].pid, a.pid());
  assert.equal(exits[0][1].signal, 'SIGKILL');
});

test('a job that ignores its signal: after the kill its sibling with retries runs again elsewhere', TEST, async (t) => {
  const file = tmp(t);
  const { pool, log } = openPool(t, {
    module: fixture('cancel.js'), maxWorkers: 1, concurrency: 2, cancelGraceMs: 100,
  });
  const pids = [];
  const sibling = pool.run(file('go'), { name: 'waitFile', retries: 1, onProgress: (p) => pids.push(p) });
  const a = await started(pool, 'stubborn', null);
  a.ac.abort();
  await a.job;
  await waitFor(() => entries(log, 'workerExit').length === 1, 'the stubborn worker to be killed');
  await waitFor(() => pids.length === 2, 'the sibling to run again');
  fs.writeFileSync(file('go'), '');
  const pid = await sibling;
  assert.notEqual(pid, a.pid());
  assert.deepEqual(pids, [a.pid(), pid]);
});

test('a timed-out job is cancelled first: the worker stops it and serves on', TEST, async (t) => {
  const file = tmp(t);
  const { pool, log } = openPool(t, { module: fixture('cancel.js'), maxWorkers: 1 });
  let pid;
  const err = await errorOf(pool.run(file('timed-out'), {
    name: 'cooperative', timeout: 150, onProgress: (p) => { pid = p; },
  }));
  assert.equal(err.code, 'ERR_JOB_TIMEOUT', err.message);
  await waitFor(() => fs.existsSync(file('timed-out')), 'the job to see its signal');
  assert.equal(await pool.call('pid'), pid, 'the same worker serves the next job');
  assert.equal(entries(log, 'workerExit').length, 0);
});

test('a timed-out job that ignores its signal: its worker is killed after cancelGraceMs', TEST, async (t) => {
  const { pool, log } = openPool(t, { module: fixture('cancel.js'), maxWorkers: 1, cancelGraceMs: 100 });
  let pid;
  await rejectsWith(pool.run(null, { name: 'stubborn', timeout: 100, onProgress: (p) => { pid = p; } }), 'ERR_JOB_TIMEOUT');
  await waitFor(() => entries(log, 'workerExit').length === 1, 'the worker to be killed');
  assert.equal(entries(log, 'workerExit')[0][1].pid, pid);
  assert.equal(entries(log, 'workerExit')[0][1].signal, 'SIGKILL');
  assert.notEqual(await pool.call('pid'), pid);
});

test('cancelGraceMs 0: an abort kills the worker at once (the old behaviour)', TEST, async (t) => {
  const file = tmp(t);
  const { pool, log } = openPool(t, { module: fixture('cancel.js'), maxWorkers: 1, concurrency: 2, cancelGraceMs: 0 });
  const sibling = errorOf(pool.call('waitFile', file('never')));
  const a = await started(pool, 'cooperative', file('marker'));
  a.ac.abort();
  await a.job;
  assert.equal((await sibling).code, 'ERR_WORKER_EXITED');
  assert.equal(entries(log, 'workerExit').length, 1);
  assert.equal(fs.existsSync(file('marker')), false, 'no cancel was sent');
});

test('cancelGraceMs is validated like the other spans', TEST, () => {
  for (const bad of [-1, 'x', 2 ** 32]) {
    assert.throws(() => openPool({ after() {} }, { module: fixture('cancel.js'), cancelGraceMs: bad }),
      { code: 'ERR_INVALID_OPTION' });
  }
});

test('Python worker: ctx.cancelled sees the cancel, the worker serves on, and its teardown runs on close()', TEST, async (t) => {
  const file = tmp(t);
  const dir = path.dirname(file('x'));
  const { pool, log } = openPool(t, {
    command: ['python3', fixture('cancel-teardown.py')], maxWorkers: 1, initData: { dir },
  });
  const a = await started(pool, 'watch', file('py-cancelled'));
  a.ac.abort();
  assert.equal((await a.job).name, 'AbortError');
  await waitFor(() => fs.existsSync(file('py-cancelled')), 'the Python call to see its cancel');
  assert.equal(await pool.call('pid'), a.pid(), 'the same worker serves on');
  await pool.close();
  assert.equal(fs.readFileSync(path.join(dir, String(a.pid())), 'utf8'), 'torn down');
  assert.equal(entries(log, 'workerExit').length, 1);
  assert.equal(entries(log, 'workerExit')[0][1].code, 0);
});

// The API inside a worker, require('comrade-pool/worker'): progress() reaches the caller's
// onProgress, emit() reaches the pool's 'event' listeners, retire() replaces the worker; and the
// same module outside a worker.
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import test from 'node:test';
import { TEST, entries, fixture, openPool, waitFor } from './pool-helpers.mjs';

const require = createRequire(import.meta.url);
const api = fixture('api.js');

test('progress reaches onProgress in order, before the result, also after an await', TEST, async (t) => {
  const { pool } = openPool(t, { module: api, maxWorkers: 1 });
  const seen = [];
  const result = await pool
    .run(6, { name: 'count', onProgress: (v) => seen.push(v) })
    .then((r) => ({ r, seenAtResult: [...seen] }));
  assert.equal(result.r, 'done');
  const expected = [1, 2, 3, 4, 5, 6, { last: true }];
  assert.deepEqual(result.seenAtResult, expected, 'every progress value came before the result');
  assert.deepEqual(seen, expected, 'and none after it');

  const sync = [];
  assert.equal(await pool.run(3, { name: 'syncProgress', onProgress: (v) => sync.push(v) }), 3);
  assert.deepEqual(sync, ['s0', 's1', 's2']);
  // Progress without an onProgress is dropped quietly.
  assert.equal(await pool.run(2, { name: 'count' }), 'done');
  assert.equal(await pool.call('count', 2), 'done');
});

test('progress of concurrent jobs goes to each job own onProgress', TEST, async (t) => {
  const { pool } = openPool(t, { module: api, maxWorkers: 1, concurrency: 3 });
  const seen = [[], [], []];
  const results = await Promise.all([4, 5, 6].map((n, i) =>
    pool.run(n, { name: 'count', onProgress: (v) => seen[i].push(v) })));
  assert.deepEqual(results, ['done', 'done', 'done']);
  assert.deepEqual(seen[0], [1, 2, 3, 4, { last: true }]);
  assert.deepEqual(seen[1], [1, 2, 3, 4, 5, { last: true }]);
  assert.deepEqual(seen[2], [1, 2, 3, 4, 5, 6, { last: true }]);
});

test("emit() reaches the pool's 'event' listeners with name, data and pid", TEST, async (t) => {
  const { pool, log } = openPool(t, { module: api, maxWorkers: 1 });
  const pid = await pool.call('emit', 'custom', { a: [1, 'ü'], b: null });
  const custom = entries(log, 'event').filter((e) => e[1] === 'custom');
  assert.deepEqual(custom, [['event', 'custom', { a: [1, 'ü'], b: null }, pid]]);
  // init() may emit too, before any job.
  const fromInit = entries(log, 'event').filter((e) => e[1] === 'from-init');
  assert.deepEqual(fromInit, [['event', 'from-init', { pid }, pid]]);
  assert.ok(log.indexOf(fromInit[0]) < log.indexOf(custom[0]));

  // Events of one job arrive in order, before its result.
  const ticksAtResult = await pool.call('emitMany', 10).then(() =>
    entries(log, 'event').filter((e) => e[1] === 'tick').map((e) => e[2]));
  assert.deepEqual(ticksAtResult, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);

  // Data that is not given is undefined.
  await pool.call('emit', 'bare');
  const bare = entries(log, 'event').find((e) => e[1] === 'bare');
  assert.equal(bare[2], undefined);
  assert.equal(bare[3], pid);
});

test('emit() with a non-string name throws TypeError in the worker', TEST, async (t) => {
  const { pool } = openPool(t, { module: api, maxWorkers: 1 });
  await assert.rejects(pool.call('emitBadName'), (e) => e instanceof TypeError && /string name/.test(e.message));
});

test('retire(): the in-flight jobs finish, the worker exits as expected, later jobs get a new worker', TEST, async (t) => {
  const { pool, log } = openPool(t, { module: api, maxWorkers: 1, concurrency: 2 });
  // Both jobs go to the one worker at once; the second is in flight when the first retires.
  const [a, b] = await Promise.all([pool.call('retireSoon'), pool.call('afterRetire')]);
  assert.equal(a, b, 'both ran on the retiring worker');
  await waitFor(() => entries(log, 'workerExit').length === 1, 'the retired worker to exit');
  const retireAt = log.findIndex((e) => e[0] === 'workerRetire' && e[1] === a);
  const exitAt = log.findIndex((e) => e[0] === 'workerExit' && e[1].pid === a);
  assert.ok(retireAt >= 0, "'workerRetire' was emitted for the worker");
  assert.ok(exitAt > retireAt, "'workerExit' comes after 'workerRetire'");
  assert.equal(log[exitAt][1].expected, true, 'the exit was expected');

  const c = await pool.call('pid');
  assert.notEqual(c, a, 'a later job runs on a new worker');
  assert.equal(entries(log, 'workerSpawn').length, 2);
  assert.ok(!pool.pids.includes(a));
});

test('retire() with concurrency 1: the queued job goes to the replacement worker', TEST, async (t) => {
  const { pool, log } = openPool(t, { module: api, maxWorkers: 1 });
  const [a, b] = await Promise.all([pool.call('retireSoon'), pool.call('pid')]);
  assert.notEqual(b, a);
  assert.deepEqual(entries(log, 'workerRetire'), [['workerRetire', a]]);
  await waitFor(() => entries(log, 'workerExit').length === 1, 'the retired worker to exit');
  assert.equal(entries(log, 'workerExit')[0][1].pid, a);
  assert.equal(entries(log, 'workerExit')[0][1].expected, true);
});

test('progress() outside a job throws ERR_NO_JOB in the worker (at load, in init, in a timer from init)', TEST, async (t) => {
  const { pool } = openPool(t, { module: api, maxWorkers: 1 });
  assert.deepEqual(await pool.call('outside'), { atLoad: 'ERR_NO_JOB', atInit: 'ERR_NO_JOB', timer: 'ERR_NO_JOB' });
});

test("require('comrade-pool/worker') outside a worker: isWorker false, progress throws ERR_NOT_IN_WORKER", () => {
  const worker = require('comrade-pool/worker');
  assert.equal(worker, require('../worker.js'), 'the package resolves itself by name');
  assert.equal(worker.isWorker, false);
  assert.throws(() => worker.progress(1), { code: 'ERR_NOT_IN_WORKER' });
  assert.throws(() => worker.emit('x', 1), { code: 'ERR_NOT_IN_WORKER' });
  assert.throws(() => worker.retire(), { code: 'ERR_NOT_IN_WORKER' });
  assert.throws(() => worker.initData, { code: 'ERR_NOT_IN_WORKER' });
});

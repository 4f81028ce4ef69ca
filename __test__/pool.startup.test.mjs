// A worker that cannot start (its module throws at load, init throws, it exits before it is
// ready): every job of the wave rejects ERR_WORKER_INIT_FAILED with the worker's error as
// cause, the pool does not respawn in a loop, and a later wave fails the same way (no hang).
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import test from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { Pool, PoolError, TEST, entries, fixture, openPool, rejectsWith, waitFor } from './pool-helpers.mjs';

const INIT_FAILED = 'ERR_WORKER_INIT_FAILED';

/** Submits `n` jobs at once and checks that each rejects ERR_WORKER_INIT_FAILED. */
async function failingWave(pool, n) {
  const errs = await Promise.all(Array.from({ length: n }, (_, i) =>
    rejectsWith(i % 2 ? pool.run(i) : pool.call('work', i), INIT_FAILED)));
  for (const err of errs) {
    assert.ok(err instanceof PoolError);
    assert.equal(typeof err.pid, 'number');
  }
  return errs;
}

test('a module that throws at load: every job rejects with the cause, wave after wave', TEST, async (t) => {
  const { pool } = openPool(t, { module: fixture('throws-at-load.js'), maxWorkers: 2 });
  for (let wave = 0; wave < 2; wave++) {
    const errs = await failingWave(pool, 12);
    for (const err of errs) {
      assert.ok(err.cause instanceof RangeError);
      assert.equal(err.cause.message, 'broken at load time');
      assert.equal(err.cause.code, 'E_LOAD');
      assert.match(err.cause.stack, /throws-at-load\.js/);
      assert.match(err.message, /broken at load time/);
    }
    assert.equal(pool.pending, 0);
  }
  // A single job fails the same way (no hang).
  await rejectsWith(pool.run(0), INIT_FAILED);
  await pool.close();
  assert.deepEqual(pool.pids, []);
});

for (const maxWorkers of [1, 2]) {
  test(`no respawn storm (maxWorkers ${maxWorkers}): a failing wave starts at most maxWorkers workers, none while idle`, TEST, async (t) => {
    const { pool, log } = openPool(t, { module: fixture('throws-at-load.js'), maxWorkers });
    const spawns = () => entries(log, 'workerSpawn').length;
    await failingWave(pool, 12);
    const firstWave = spawns();
    // With no new work, the pool starts nothing more.
    await waitFor(() => entries(log, 'workerExit').length === spawns(), 'the failed workers to be reaped');
    const settledAt = spawns();
    await delay(200);
    assert.equal(spawns(), settledAt, 'no worker is started while no work is waiting');
    assert.deepEqual(pool.pids, []);

    await failingWave(pool, 12);
    const secondWave = spawns() - firstWave;
    assert.ok(firstWave >= 1 && firstWave <= maxWorkers,
      `the first wave started ${firstWave} workers, more than maxWorkers ${maxWorkers}`);
    assert.ok(secondWave >= 1 && secondWave <= maxWorkers,
      `the second wave started ${secondWave} workers, more than maxWorkers ${maxWorkers}`);
  });
}

test('init() that throws: jobs reject ERR_WORKER_INIT_FAILED with the init error as cause', TEST, async (t) => {
  const { pool, log } = openPool(t, {
    module: fixture('init-throws.js'), maxWorkers: 2, concurrency: 3, initData: { why: 'because' },
  });
  const errs = await failingWave(pool, 10);
  for (const err of errs) {
    assert.ok(err.cause instanceof TypeError);
    assert.equal(err.cause.message, 'init refused: because');
    assert.equal(err.cause.code, 'E_INIT');
    assert.deepEqual(err.cause.detail, { why: 'because' });
  }
  await failingWave(pool, 4);
  const spawned = entries(log, 'workerSpawn').length;
  assert.ok(spawned <= 4, `two waves started ${spawned} workers, more than 2 × maxWorkers`);
});

test('enqueue() callbacks get ERR_WORKER_INIT_FAILED too', TEST, async (t) => {
  const { pool } = openPool(t, { module: fixture('init-throws.js'), maxWorkers: 1 });
  const errs = await Promise.all([1, 2, 3].map((i) => new Promise((resolve) => {
    pool.enqueue(i, (...args) => resolve(args));
  })));
  for (const args of errs) {
    assert.equal(args.length, 1);
    assert.equal(args[0].code, INIT_FAILED);
  }
});

test('a module that exits while loading: ERR_WORKER_INIT_FAILED with its exit code', TEST, async (t) => {
  const { pool, log } = openPool(t, { module: fixture('exits-at-load.js'), maxWorkers: 2 });
  const errs = await failingWave(pool, 6);
  for (const err of errs) {
    assert.equal(err.exitCode, 7);
    assert.match(err.message, /7/);
  }
  await failingWave(pool, 2);
  const spawned = entries(log, 'workerSpawn').length;
  assert.ok(spawned <= 4, `two waves started ${spawned} workers, more than 2 × maxWorkers`);
});

test('a module with a syntax error, a missing dependency, or no functions', TEST, async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'comrade-pool-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const broken = path.join(dir, 'syntax-error.js');
  writeFileSync(broken, 'module.exports = () => {;\n');

  const syntax = openPool(t, { module: broken, maxWorkers: 1 }).pool;
  const missing = openPool(t, { module: fixture('missing-dep.js'), maxWorkers: 1 }).pool;
  const none = openPool(t, { module: fixture('no-functions.js'), maxWorkers: 1 }).pool;
  const [e1, e2, e3] = await Promise.all([
    rejectsWith(syntax.run(1), INIT_FAILED),
    rejectsWith(missing.run(1), INIT_FAILED),
    rejectsWith(none.run(1), INIT_FAILED),
  ]);
  assert.ok(e1.cause instanceof SyntaxError, `cause is ${e1.cause && e1.cause.name}`);
  assert.equal(e2.cause.code, 'MODULE_NOT_FOUND');
  assert.match(e2.cause.message, /no-such-dependency-anywhere/);
  assert.equal(e3.cause.code, 'ERR_NO_FUNCTIONS');
});

test('a module path that does not exist throws ERR_INVALID_OPTION in the constructor', () => {
  const nowhere = fixture('does-not-exist.js');
  assert.throws(() => new Pool({ module: nowhere }), (e) => {
    assert.equal(e.code, 'ERR_INVALID_OPTION');
    assert.ok(e.message.includes(nowhere));
    return true;
  });
  assert.throws(() => new Pool({ module: new URL('file:///nonexistent/comrade.js') }), { code: 'ERR_INVALID_OPTION' });
});

test('close() and terminate() after a startup failure resolve', TEST, async (t) => {
  const a = openPool(t, { module: fixture('throws-at-load.js'), maxWorkers: 1 }).pool;
  await rejectsWith(a.run(1), INIT_FAILED);
  await a.close();
  await rejectsWith(a.run(1), 'ERR_POOL_CLOSED');

  const b = openPool(t, { module: fixture('init-throws.js'), maxWorkers: 1 }).pool;
  const job = rejectsWith(b.run(1), INIT_FAILED);
  await job;
  await b.terminate();
  assert.deepEqual(b.pids, []);
});

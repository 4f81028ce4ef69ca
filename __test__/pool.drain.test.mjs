// Backpressure (issue 10, item 9): needsDrain while the jobs waiting for a worker number at
// least drainThreshold, 'drain' when they drop back below; stats().queued counts every waiting
// job, those of this tick and those waiting for a worker to start among them. Real workers;
// jobs held at a gate that opens on SIGUSR2, so the counts are exact, never timed.
import assert from 'node:assert/strict';
import test from 'node:test';
import { setImmediate as tick } from 'node:timers/promises';
import { TEST, fixture, openPool, rejectsWith, codes, Pool } from './pool-helpers.mjs';

const mod = fixture('coalesce.js');

async function until(check, what) {
  for (let i = 0; ; i++) {
    if (await check()) return;
    if (i > 100000) throw new Error(`never: ${what}`);
    await tick();
  }
}

test('drain fires once the waiting jobs drop below drainThreshold, and needsDrain says so', TEST, async (t) => {
  const { pool } = openPool(t, { module: mod, maxWorkers: 1, concurrency: 1, drainThreshold: 3 });
  const { pid } = await pool.call('ran');
  assert.equal(pool.drainThreshold, 3);
  const drains = [];
  pool.on('drain', () => drains.push({ queued: pool.stats().queued, needsDrain: pool.needsDrain }));
  // One job holds the worker; five wait behind it.
  const blocker = pool.run('b', { name: 'gated' });
  const quick = [1, 2, 3, 4, 5].map((i) => pool.run(i, { name: 'quick' }));
  // Counted at once, before the tick's jobs reach the engine.
  assert.equal(pool.stats().queued, 6);
  assert.equal(pool.needsDrain, true);
  await until(async () => (await pool.stats()).inFlight === 1, 'the blocker runs');
  assert.equal(pool.stats().queued, 5);
  assert.equal(pool.needsDrain, true);
  for (let i = 0; i < 20; i++) await tick();
  assert.equal(drains.length, 0, 'no drain while five wait');
  process.kill(pid, 'SIGUSR2');
  await blocker;
  await Promise.all(quick);
  await until(() => drains.length === 1, 'drain');
  assert.equal(drains.length, 1);
  assert.ok(drains[0].queued < 3, `${drains[0].queued} queued at the drain`);
  assert.equal(drains[0].needsDrain, false);
  assert.equal(pool.needsDrain, false);
  // Again: the worker's gate is open now, so a second wave comes and goes; one more drain.
  const wave = Array.from({ length: 10 }, (_, i) => pool.run(i, { name: 'quick' }));
  assert.equal(pool.needsDrain, true);
  await Promise.all(wave);
  await until(() => drains.length === 2, 'the second drain');
});

test('jobs waiting for workers to start are waiting; drain fires as workers take them, before any result', TEST, async (t) => {
  // The first worker starts at once, the second 200 ms later (spawnDelay).
  const { pool, log } = openPool(t, { module: mod, maxWorkers: 2, concurrency: 1, spawnDelay: 200, drainThreshold: 5 });
  let drained = 0;
  let pendingAtDrain = -1;
  pool.on('drain', () => {
    drained++;
    pendingAtDrain = pool.pending;
  });
  // Six jobs that never answer until their gate opens: no result can wake the host.
  const jobs = Array.from({ length: 6 }, (_, i) => pool.run(i, { name: 'gated' }));
  // No worker yet: all six wait (here, in this tick's batch).
  assert.equal(pool.stats().queued, 6);
  assert.equal(pool.needsDrain, true);
  // Each worker takes a job as it starts: four wait, under the threshold of 5.
  await until(() => drained === 1, 'drain as the workers take their jobs');
  assert.equal(pendingAtDrain, 6, 'no job had settled');
  assert.equal(pool.stats().queued, 4);
  assert.equal(pool.needsDrain, false);
  // Open the gates once both workers run their job (their SIGUSR2 handler is installed).
  await until(() => log.filter(([e]) => e === 'event').length === 2, 'two jobs running');
  for (const [, , , pid] of log.filter(([e]) => e === 'event')) process.kill(pid, 'SIGUSR2');
  const out = await Promise.all(jobs);
  assert.deepEqual(out.map((r) => r.tag), [0, 1, 2, 3, 4, 5]);
  assert.equal(drained, 1);
});

test('drainThreshold defaults to the slots and is validated', TEST, async (t) => {
  const { pool } = openPool(t, { module: mod, maxWorkers: 3, concurrency: 4 });
  assert.equal(pool.drainThreshold, 12);
  assert.equal(pool.needsDrain, false);
  for (const drainThreshold of [0, -1, 1.5, '3', Infinity]) {
    assert.throws(() => new Pool({ module: mod, drainThreshold }), { code: codes.INVALID_OPTION });
  }
  await rejectsWith(pool.run(1, { name: 'nope', drainThreshold: 1 }), codes.INVALID_OPTION);
});

// Priorities (issue 10, items 1 and 2): higher runs sooner, equal ones first come first; with
// prioritySlots, the jobs of each priority range in flight stay under the range's cap
// (proletariat's semantics). Proved by completion order and by counts the worker keeps of the
// jobs running at once, never by timing.
import assert from 'node:assert/strict';
import test from 'node:test';
import { setImmediate as tick } from 'node:timers/promises';
import { TEST, fixture, openPool, rejectsWith, Pool } from './pool-helpers.mjs';

const mod = fixture('priority.js');

// Asks `check` (async) until it is true; the test's own timeout bounds the wait.
async function until(check, what) {
  for (let i = 0; ; i++) {
    if (await check()) return;
    if (i > 10000) throw new Error(`never: ${what}`);
    await tick();
  }
}

// Opens a pool of one worker, warm (so that the next job goes to it at once).
async function warmPool(t, options) {
  const { pool } = openPool(t, { module: mod, maxWorkers: 1, ...options });
  const { pid } = await pool.call('stats');
  return { pool, pid };
}

test('one busy worker runs the waiting jobs highest priority first, equal ones in order', TEST, async (t) => {
  const { pool, pid } = await warmPool(t, { concurrency: 1 });
  const blocker = pool.exec('gate', [0, 'blocker']);
  await tick();
  const done = [];
  const jobs = [
    ['a', undefined], ['b', 5], ['c', -1], ['d', 5], ['e', 0.5], ['f', 0], ['g', 1e9], ['h', -0],
  ].map(([tag, priority], i) => {
    const opts = priority === undefined ? {} : { priority };
    // run() and exec() both take it.
    const p = i % 2 === 0 ? pool.run(tag, { name: 'tag', ...opts }) : pool.exec('tag', [tag], opts);
    return p.then((r) => done.push(r));
  });
  process.kill(pid, 'SIGUSR2');
  assert.equal(await blocker, 'blocker');
  await Promise.all(jobs);
  // 1e9, then the two 5s in order, 0.5, then the 0s (none given, 0, -0) in order, then -1.
  assert.deepEqual(done, ['g', 'b', 'd', 'e', 'a', 'f', 'h', 'c']);
});

test('the pool option priority is the default of jobs that give none', TEST, async (t) => {
  const { pool, pid } = await warmPool(t, { concurrency: 1, priority: 3 });
  const blocker = pool.exec('gate', [0, 'blocker']);
  await tick();
  const done = [];
  const jobs = [
    pool.exec('tag', ['low'], { priority: 2 }),
    pool.exec('tag', ['default']),
    pool.run('high', { name: 'tag', priority: 4 }),
  ].map((p) => p.then((r) => done.push(r)));
  process.kill(pid, 'SIGUSR2');
  await blocker;
  await Promise.all(jobs);
  assert.deepEqual(done, ['high', 'default', 'low']);
});

test('batches with and without per-job options mix: each job keeps its own or the pool\'s priority', TEST, async (t) => {
  // The engine takes a tick's jobs in one call: a batch where no job has options of its own
  // goes by a call without the per-job arrays, and must still get the pool's defaults.
  const { pool, pid } = await warmPool(t, { concurrency: 1, priority: 3 });
  const blocker = pool.exec('gate', [0, 'blocker']);
  await tick();
  const done = [];
  const track = (p) => p.then((r) => done.push(r));
  // One batch: a job with its own priority, then one without.
  const jobs = [track(pool.exec('tag', ['p5'], { priority: 5 })), track(pool.exec('tag', ['none1']))];
  await tick();
  // A batch where no job has options of its own.
  jobs.push(track(pool.exec('tag', ['none2'])), track(pool.run('none3', { name: 'tag' })));
  await tick();
  jobs.push(track(pool.exec('tag', ['p2'], { priority: 2 })));
  await tick();
  process.kill(pid, 'SIGUSR2');
  await blocker;
  await Promise.all(jobs);
  // The jobs without a priority of their own have the pool's 3: after 5, before 2.
  assert.deepEqual(done, ['p5', 'none1', 'none2', 'none3', 'p2']);
});

// Runs `count` gate jobs of `priority` (counted under `range`), returns their promises.
function gates(pool, count, priority, range) {
  return Array.from({ length: count }, (_, i) => pool.exec('gate', [range, `${range}-${i}`], { priority }));
}

// The worker's counts, asked with a job of `priority` (a range with room).
const statsAt = (pool, priority) => pool.exec('stats', [], { priority });

test('prioritySlots: a range over its cap waits while slots are free (lowest range: the rest)', TEST, async (t) => {
  // 10 slots, {1: 3, 2: 2}: [0, 1) (negative priorities too) may hold 5, [1, 2) 8, >= 2 all 10.
  const { pool, pid } = await warmPool(t, { concurrency: 10, prioritySlots: { 1: 3, 2: 2 } });
  const low = gates(pool, 8, 0, 'low').concat(gates(pool, 2, -7, 'low'));
  await until(async () => (await statsAt(pool, 9)).running.low === 5, 'five low jobs running');
  assert.deepEqual((await statsAt(pool, 9)).running, { low: 5 });
  assert.equal(pool.stats().queued, 5, 'five low jobs wait with five slots free');
  // 12 slots, same guarantees: [1, 2) may hold 3 + the lowest range's 7 = 10 of them.
  const other = await warmPool(t, { concurrency: 12, prioritySlots: { 1: 3, 2: 2 } });
  const mid = gates(other.pool, 12, 1.5, 'mid');
  await until(async () => (await statsAt(other.pool, 9)).running.mid === 10, 'ten mid jobs running');
  assert.deepEqual((await statsAt(other.pool, 9)).running, { mid: 10 });
  assert.equal(other.pool.stats().queued, 2, 'two mid jobs wait with two slots free');
  process.kill(pid, 'SIGUSR2');
  process.kill(other.pid, 'SIGUSR2');
  await Promise.all([...low, ...mid]);
  assert.equal((await pool.call('stats')).max.low, 5);
  assert.equal((await other.pool.call('stats')).max.mid, 10);
});

test('prioritySlots with sacredGuarantees: a higher range borrows only from the lowest one', TEST, async (t) => {
  // 10 slots, {1: 3, 2: 2}, sacred: [0, 1) may hold 5, [1, 2) 8, >= 2 only 7.
  const { pool, pid } = await warmPool(t, {
    concurrency: 10, prioritySlots: { 1: 3, 2: 2 }, sacredGuarantees: true,
  });
  const top = gates(pool, 9, 2, 'top');
  await until(async () => (await statsAt(pool, 1)).running.top === 7, 'seven top jobs running');
  const s = await statsAt(pool, 1);
  assert.deepEqual(s.running, { top: 7 });
  assert.equal(pool.stats().queued, 2, 'two top jobs wait with three slots free');
  // Without sacred guarantees the same jobs all run.
  const other = await warmPool(t, { concurrency: 10, prioritySlots: { 1: 3, 2: 2 } });
  const all = gates(other.pool, 9, 2, 'top');
  await until(async () => (await statsAt(other.pool, 1)).running.top === 9, 'nine top jobs running');
  process.kill(pid, 'SIGUSR2');
  process.kill(other.pid, 'SIGUSR2');
  await Promise.all([...top, ...all]);
  assert.equal((await pool.call('stats')).max.top, 7);
  assert.equal((await other.pool.call('stats')).max.top, 9);
});

test('bad priorities: ERR_INVALID_ARGUMENT per job, ERR_INVALID_OPTION for the pool', TEST, async (t) => {
  const { pool } = openPool(t, { module: mod, maxWorkers: 2, concurrency: 2 });
  for (const priority of [NaN, Infinity, -Infinity, '1', null]) {
    await rejectsWith(pool.run('x', { name: 'tag', priority }), 'ERR_INVALID_ARGUMENT');
    await rejectsWith(pool.exec('tag', ['x'], { priority }), 'ERR_INVALID_ARGUMENT');
  }
  assert.equal(await pool.exec('tag', ['ok'], { priority: -3.5 }), 'ok');
  const bad = [
    { priority: NaN },
    { priority: Infinity },
    { priority: '2' },
    // 2 × 2 = 4 slots: 5 guaranteed is too many (key 0 is the lowest range, not counted).
    { maxWorkers: 2, concurrency: 2, prioritySlots: { 1: 3, 2: 2 } },
    { prioritySlots: { '-1': 1 } },
    { prioritySlots: { abc: 1 } },
    { prioritySlots: { 1: 1.5 } },
    { prioritySlots: [1, 2] },
    { sacredGuarantees: 'yes' },
  ];
  for (const options of bad) {
    assert.throws(() => new Pool({ module: mod, ...options }), { code: 'ERR_INVALID_OPTION' },
      JSON.stringify(options));
  }
  // Exactly the slots is fine, and a key 0 is ignored in the sum.
  const ok = new Pool({ module: mod, maxWorkers: 2, concurrency: 2, prioritySlots: { 0: 9, 1: 3, 2: 1 } });
  await ok.terminate();
});

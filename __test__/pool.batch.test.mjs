// Batches (issue 10, item 6): pool.map() and pool.mapSettled() over iterables and async
// iterables through a bounded window. Proved with real workers, by order and counts.
import assert from 'node:assert/strict';
import test from 'node:test';
import { TEST, fixture, openPool, rejectsWith, errorOf, codes } from './pool-helpers.mjs';

const mod = fixture('batch.js');

async function ranIn(pool) {
  return (await pool.call('ran')).ran;
}

test('map resolves with the results in input order, whatever the completion order', TEST, async (t) => {
  const { pool } = openPool(t, { module: mod, maxWorkers: 1, concurrency: 20 });
  const order = [];
  const items = Array.from({ length: 20 }, (_, i) => i);
  const progress = [];
  const out = await pool.map(items, {
    name: 'reverse',
    onResult: (err, value, index) => {
      assert.equal(err, null);
      assert.equal(value, index);
      order.push(index);
    },
    onProgress: (p) => progress.push(p),
  });
  assert.deepEqual(out, items);
  // The worker answered them last first: the results still come in input order.
  assert.deepEqual(order, [...items].reverse());
  assert.equal(progress.length, 20);
  assert.deepEqual(progress.at(-1), { done: 20, failed: 0, total: 20 });
  assert.deepEqual(progress.map((p) => p.done), items.map((i) => i + 1));
  // The default function, and a Set.
  assert.deepEqual(await pool.map(new Set([1, 2, 3])), [1, 2, 3]);
  assert.deepEqual(await pool.map([], { name: 'double' }), []);
});

test('map fails fast: the first error rejects, the items not started are withdrawn', TEST, async (t) => {
  const { pool } = openPool(t, { module: mod, maxWorkers: 1, concurrency: 1 });
  await pool.call('ran');
  let pulled = 0;
  // One job at a time. Item 3 fails; item 4, which the worker may take as 3 ends, holds the
  // worker until it is cancelled: items 5 and later cannot have started when the error arrives.
  function* items() {
    for (let x = 0; x < 1000; x++) {
      pulled++;
      yield { x, bad: 3, hold: 4 };
    }
  }
  const results = [];
  const err = await errorOf(pool.map(items(), {
    name: 'check', window: 10, onResult: (e, v, i) => results.push([e === null, i]),
  }));
  assert.ok(err instanceof RangeError);
  assert.equal(err.message, 'bad 3');
  // Nothing is left pending: the queued items were withdrawn as the map rejected.
  assert.equal(pool.pending, 0);
  assert.deepEqual(results, [[true, 0], [true, 1], [true, 2], [false, 3]]);
  // Window 10: items 0 to 9, then one more as each of 0, 1 and 2 succeeded.
  assert.equal(pulled, 13);
  // Items 0 to 3 ran, and item 4 if the worker took it before the map rejected; 5 to 12 never.
  const ran = await ranIn(pool);
  assert.ok(ran >= 4 && ran <= 5, `${ran} executions`);
  assert.equal(pool.stats().aborted, 9);
});

test('mapSettled gives every item its status; onResult and onProgress count them', TEST, async (t) => {
  const { pool } = openPool(t, { module: mod, maxWorkers: 2, concurrency: 4 });
  const items = Array.from({ length: 100 }, (_, x) => ({ x, every: 7 }));
  let calls = 0;
  let errors = 0;
  let last;
  const out = await pool.mapSettled(items, {
    name: 'check',
    window: 8,
    onResult: (err) => {
      calls++;
      if (err) errors++;
    },
    onProgress: (p) => {
      last = p;
    },
  });
  assert.equal(out.length, 100);
  for (let x = 0; x < 100; x++) {
    if (x % 7 === 0) {
      assert.equal(out[x].status, 'rejected');
      assert.ok(out[x].reason instanceof RangeError);
      assert.equal(out[x].reason.x, x);
    } else {
      assert.deepEqual(out[x], { status: 'fulfilled', value: x });
    }
  }
  assert.equal(calls, 100);
  assert.equal(errors, 15);
  assert.deepEqual(last, { done: 100, failed: 15, total: 100 });
  const { ran: a } = await pool.call('ran');
  assert.ok(a <= 100);
});

test('a generator\'s total is null until it is exhausted; an async iterable works the same', TEST, async (t) => {
  const { pool } = openPool(t, { module: mod, maxWorkers: 1, concurrency: 2 });
  function* gen(n) {
    for (let i = 0; i < n; i++) yield i;
  }
  const reports = [];
  const out = await pool.map(gen(30), { name: 'double', window: 4, onProgress: (p) => reports.push(p) });
  assert.deepEqual(out, Array.from({ length: 30 }, (_, i) => i * 2));
  assert.equal(reports[0].total, null);
  assert.deepEqual(reports.at(-1), { done: 30, failed: 0, total: 30 });
  async function* slow(n) {
    for (let i = 0; i < n; i++) {
      await null;
      yield i;
    }
  }
  const areports = [];
  const aout = await pool.mapSettled(slow(25), { name: 'double', window: 3, onProgress: (p) => areports.push(p) });
  assert.deepEqual(aout.map((r) => r.value), Array.from({ length: 25 }, (_, i) => i * 2));
  assert.deepEqual(areports.at(-1), { done: 25, failed: 0, total: 25 });
  // An async iterable that throws rejects the batch with its error.
  async function* broken() {
    yield 1;
    throw new Error('source broke');
  }
  assert.equal((await errorOf(pool.map(broken()))).message, 'source broke');
  // collect: false keeps no results.
  assert.deepEqual(await pool.map(gen(10), { collect: false }), { done: 10, failed: 0, total: 10 });
});

test('the signal cancels the rest of a batch', TEST, async (t) => {
  const { pool } = openPool(t, { module: mod, maxWorkers: 1, concurrency: 1 });
  await pool.call('ran');
  const ac = new AbortController();
  let returned = false;
  function* items() {
    try {
      for (let x = 0; x < 1000; x++) yield x;
    } finally {
      returned = true;
    }
  }
  const err = await errorOf(pool.map(items(), {
    window: 5, signal: ac.signal, onResult: (e, v, i) => { if (i === 9) ac.abort(); },
  }));
  assert.equal(err.name, 'AbortError');
  assert.ok(returned, 'the iterator was closed');
  assert.equal(pool.pending, 0);
  // Items 0 to 9 ran, and at most the rest of the window (10 to 14), not the other 985.
  const ran = await ranIn(pool);
  assert.ok(ran >= 10 && ran <= 15, `${ran} executions`);
  // Aborted before the call: nothing runs.
  await rejectsWith(pool.mapSettled([1, 2], { signal: ac.signal }), codes.ABORTED);
  assert.equal(await ranIn(pool), ran);
});

test('per-job options apply to each item; a key coalesces items', TEST, async (t) => {
  const { pool } = openPool(t, { module: mod, maxWorkers: 1, concurrency: 8 });
  await pool.call('ran');
  // Ten items, two keys: the items of a key that arrive while its job runs join it.
  const out = await pool.map(Array.from({ length: 10 }, (_, i) => i % 2), {
    name: 'double', key: (item) => `k${item}`, priority: 1, timeout: 60000, retries: 1,
  });
  assert.deepEqual(out, [0, 2, 0, 2, 0, 2, 0, 2, 0, 2]);
  assert.equal(await ranIn(pool), 2);
  assert.equal(pool.stats().coalesced, 8);
});

test('bad input to map: a clear code, never a hang', TEST, async (t) => {
  const { pool } = openPool(t, { module: mod, maxWorkers: 1 });
  await rejectsWith(pool.map(5), codes.INVALID_ARGUMENT);
  await rejectsWith(pool.map(null), codes.INVALID_ARGUMENT);
  await rejectsWith(pool.map([1], { window: 0 }), codes.INVALID_ARGUMENT);
  await rejectsWith(pool.map([1], { onResult: 1 }), codes.INVALID_ARGUMENT);
  await rejectsWith(pool.map([1], { timeout: -1 }), codes.INVALID_ARGUMENT);
  await rejectsWith(pool.map([1], { key: '' }), codes.INVALID_ARGUMENT);
  await rejectsWith(pool.map([1], { key: () => 5 }), codes.INVALID_ARGUMENT);
  await rejectsWith(pool.map([1], { windw: 3 }), codes.INVALID_OPTION);
  await rejectsWith(pool.mapSettled([1], 'x'), codes.INVALID_ARGUMENT);
  // A throwing onResult fails the batch with its error.
  const boom = new Error('boom');
  assert.equal(await errorOf(pool.map([1, 2, 3], { onResult: () => { throw boom; } })), boom);
  assert.equal(pool.pending, 0);
});

// The window bounds the jobs accepted and unsettled: a 200k-item generator never has more than
// `window` of them, counted by the generator itself and by pool.pending.
test('200k items through a window of 64: never more than 64 jobs at once', { timeout: 120000 }, async (t) => {
  const { pool } = openPool(t, { module: mod, maxWorkers: 2, concurrency: 16 });
  const N = 200000;
  const WINDOW = 64;
  let pulled = 0;
  let settled = 0;
  let most = 0;
  function* items() {
    for (let i = 0; i < N; i++) {
      most = Math.max(most, pulled - settled);
      pulled++;
      yield i;
    }
  }
  let pendingMost = 0;
  let queuedMost = 0;
  const result = await pool.map(items(), {
    window: WINDOW,
    collect: false,
    onResult: (err, value, index) => {
      assert.equal(value, index);
      settled++;
      pendingMost = Math.max(pendingMost, pool.pending);
      if (settled % 10000 === 0) queuedMost = Math.max(queuedMost, pool.stats().queued + pool.stats().inFlight);
    },
  });
  assert.deepEqual(result, { done: N, failed: 0, total: N });
  assert.ok(most <= WINDOW, `${most} unsettled items when the generator was pulled`);
  assert.ok(pendingMost <= WINDOW, `pool.pending reached ${pendingMost}`);
  assert.ok(queuedMost <= WINDOW, `queued + in flight reached ${queuedMost}`);
});

// 10 million items at bounded RSS: a run of minutes, opt-in (COMRADE_STRESS=1).
test('10M items from a generator at bounded RSS', { skip: process.env.COMRADE_STRESS !== '1' && 'set COMRADE_STRESS=1', timeout: 1800000 }, async (t) => {
  const { pool } = openPool(t, { module: mod, maxWorkers: 2, concurrency: 64 });
  const N = 10_000_000;
  function* items() {
    for (let i = 0; i < N; i++) yield i;
  }
  let rssAt1M = 0;
  let rssMost = 0;
  let n = 0;
  const result = await pool.map(items(), {
    collect: false,
    onResult: () => {
      n++;
      if (n % 100000 === 0) {
        const rss = process.memoryUsage().rss;
        if (n === 1000000) rssAt1M = rss;
        if (n > 1000000) rssMost = Math.max(rssMost, rss);
      }
    },
  });
  assert.deepEqual(result, { done: N, failed: 0, total: N });
  const growth = rssMost - rssAt1M;
  t.diagnostic(`RSS at 1M items ${(rssAt1M / 2 ** 20).toFixed(1)} MiB, most after ${(rssMost / 2 ** 20).toFixed(1)} MiB`);
  // 9M more items must not grow the host: bounded, not proportional (they would need GiBs).
  assert.ok(growth < 64 * 2 ** 20, `RSS grew by ${(growth / 2 ** 20).toFixed(1)} MiB over 9M items`);
});

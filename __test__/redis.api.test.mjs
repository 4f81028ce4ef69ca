// A producer's batches (map, mapSettled), cluster-wide stats and maxExpectedWait, against a
// real redis-server and real worker-host processes (issue 13).
import test from 'node:test';
import assert from 'node:assert/strict';
import {
  Pool, PoolError, codes, startRedis, startHost, until,
} from './redis-helpers.mjs';

const T = { timeout: 110000 };

function producer(t, options) {
  const p = new Pool(options);
  t.after(() => p.terminate());
  return p;
}

async function twoHosts(t, url, queue, env = [{}, {}]) {
  const hosts = env.map((e, i) => startHost(t, {
    url, queue, args: ['--workers', '1', '--concurrency', '2', '--poll', '200'], env: { HOST_TAG: `h${i}`, ...e },
  }));
  await Promise.all(hosts.map((h) => h.ready()));
  return hosts;
}

test('map() runs every item on the hosts and resolves with the results in input order', T, async (t) => {
  const r = await startRedis(t);
  const hosts = await twoHosts(t, r.url, 'q');
  const p = producer(t, { redis: r.url, queue: 'q' });
  const n = 300;
  const seen = [];
  const progress = [];
  const out = await p.map(Array.from({ length: n }, (_, i) => i), {
    name: 'work', window: 16,
    onResult: (err, v, i) => { assert.equal(err, null); seen.push(i); },
    onProgress: (s) => progress.push(s),
  });
  assert.equal(out.length, n);
  for (let i = 0; i < n; i++) assert.equal(out[i].v, i * 2);
  // Both hosts ran items (each holds only its 2 slots, so neither can hoard the window).
  const tags = new Set(out.map((x) => x.host));
  assert.deepEqual([...tags].sort(), ['h0', 'h1']);
  assert.equal(seen.length, n);
  assert.deepEqual([...seen].sort((a, b) => a - b), out.map((_, i) => i));
  assert.deepEqual(progress.at(-1), { done: n, failed: 0, total: n });
  // An async iterable, collect: false, exec-style arguments through the default-function path.
  async function* gen() {
    for (let i = 0; i < 50; i++) yield i;
  }
  assert.deepEqual(await p.map(gen(), { name: 'double', collect: false }), { done: 50, failed: 0, total: 50 });
  assert.equal(p.pending, 0);
  assert.ok(hosts.every((h) => h.child.exitCode === null));
});

test('map() fails fast: the first error rejects it, the other items are withdrawn, the iterator closed', T, async (t) => {
  const r = await startRedis(t);
  // Slow hosts: the items after the failing one are still waiting or running when it fails.
  await twoHosts(t, r.url, 'q', [{ SLOW_MS: '300' }, { SLOW_MS: '300' }]);
  const p = producer(t, { redis: r.url, queue: 'q' });
  let pulled = 0;
  let closed = false;
  function* items() {
    try {
      yield -1; // fails at once
      for (let i = 0; i < 1000; i++) {
        pulled++;
        yield i;
      }
    } finally {
      closed = true;
    }
  }
  const results = [];
  const err = await p.map(items(), {
    name: 'maybe', window: 8, onResult: (e, v, i) => results.push([i, e === null]),
  }).then(() => assert.fail('resolved'), (e) => e);
  assert.ok(err instanceof RangeError);
  assert.equal(err.code, 'E_TASK');
  assert.equal(err.message, 'item -1 is negative');
  assert.ok(closed, 'the iterator was closed');
  assert.ok(pulled < 1000, `only about a window of items was pulled (${pulled})`);
  assert.ok(results.some(([i, ok]) => i === 0 && !ok), 'onResult saw the failing item');
  // Every item settles (withdrawn or cancelled on its host): nothing stays pending, and the
  // queue empties (the withdrawn items never run).
  await until(() => p.pending === 0, 'the withdrawn items to settle');
  await until(async () => {
    const s = await p.queueStats();
    return s.waiting === 0 && s.running === 0;
  }, 'the queue to empty');
  assert.equal(p.stats().aborted > 0, true);
});

test('mapSettled() keeps every outcome in input order; a caller\'s signal stops a batch', T, async (t) => {
  const r = await startRedis(t);
  await twoHosts(t, r.url, 'q');
  const p = producer(t, { redis: r.url, queue: 'q' });
  const settled = await p.mapSettled([1, -2, 3, -4, 5], { name: 'maybe', priority: 2, retries: 1, timeout: 60000 });
  assert.deepEqual(settled.map((s) => s.status), ['fulfilled', 'rejected', 'fulfilled', 'rejected', 'fulfilled']);
  assert.deepEqual(settled.filter((s) => s.status === 'fulfilled').map((s) => s.value), [2, 6, 10]);
  assert.equal(settled[1].reason.code, 'E_TASK');
  assert.equal(settled[3].reason.message, 'item -4 is negative');

  const ac = new AbortController();
  const stopped = p.mapSettled((function* forever() { for (let i = 0; ; i++) yield i; })(), {
    name: 'maybe', window: 4, onResult: () => { ac.abort(); }, signal: ac.signal,
  });
  await assert.rejects(stopped, { name: 'AbortError' });
  await until(() => p.pending === 0, 'the batch\'s items to settle');
});

test('map() refuses what has no meaning across machines, with ERR_INVALID_OPTION', T, async (t) => {
  const r = await startRedis(t);
  const p = producer(t, { redis: r.url, queue: 'q' });
  for (const o of [{ finishBy: Date.now() + 60000 }, { finishBy: Date.now() + 60000, speculate: true }, { speculate: false }]) {
    await assert.rejects(p.map([1], o), (e) => e instanceof PoolError && e.code === codes.INVALID_OPTION &&
      /not supported with `redis`/.test(e.message));
    await assert.rejects(p.mapSettled([1], o), { code: codes.INVALID_OPTION });
  }
  await assert.rejects(p.map([1], { key: 'k' }), { code: codes.INVALID_OPTION });
  await assert.rejects(p.map([1], { nope: 1 }), { code: codes.INVALID_OPTION });
  await assert.rejects(p.map([1], { window: 0 }), { code: codes.INVALID_ARGUMENT });
  await assert.rejects(p.map(5), { code: codes.INVALID_ARGUMENT });
  assert.equal(p.pending, 0);
});

test('stats: every host records run times; any producer reads the whole queue\'s percentiles', T, async (t) => {
  const r = await startRedis(t);
  await twoHosts(t, r.url, 'q', [{ SLOW_MS: '20' }, { SLOW_MS: '20' }]);
  const p = producer(t, { redis: r.url, queue: 'q' });
  const other = producer(t, { redis: r.url, queue: 'q' });
  assert.equal(other.stats().runTime, null);
  await Promise.all(Array.from({ length: 40 }, (_, i) => p.run(i, { name: 'work' })));
  await Promise.all(Array.from({ length: 5 }, (_, i) => p.call('add', i, 1)));
  // The other producer ran nothing: what it reads is the cluster's.
  const q = await other.queueStats();
  assert.equal(q.waiting, 0);
  assert.equal(q.running, 0);
  assert.equal(q.dead, 0);
  assert.equal(q.hosts, 2);
  assert.equal(q.slots, 4);
  assert.equal(q.runTime.samples, 45);
  assert.equal(q.functions.work.samples, 40);
  assert.equal(q.functions.add.samples, 5);
  assert.deepEqual(Object.keys(q.functions).sort(), ['add', 'work']);
  for (const pc of [q.runTime, q.functions.work, q.functions.add]) {
    assert.ok(pc.p50 >= 0 && pc.p50 <= pc.p90 && pc.p90 <= pc.p99, JSON.stringify(pc));
  }
  // work() sleeps SLOW_MS on its host: its run times are at least that.
  assert.ok(q.functions.work.p50 >= 19, JSON.stringify(q.functions.work));
  assert.ok(q.meanRunTime > 0);
  assert.deepEqual(other.stats().runTime, q.runTime);
});

test('maxExpectedWait refuses at admission (ERR_EXPECTED_WAIT) from the cluster\'s run times and slots', T, async (t) => {
  const r = await startRedis(t);
  await twoHosts(t, r.url, 'q', [{ SLOW_MS: '100' }, { SLOW_MS: '100' }]);
  const warm = producer(t, { redis: r.url, queue: 'q' });
  const p = producer(t, { redis: r.url, queue: 'q', maxExpectedWait: 1 });
  // Before the warm-up (twice the slots in recorded run times) nothing is refused.
  assert.deepEqual(await Promise.all([1, 2, 3].map((i) => p.call('add', i, 1))), [2, 3, 4]);
  await Promise.all(Array.from({ length: 12 }, (_, i) => warm.run(i, { name: 'work' })));
  const q = await warm.queueStats();
  assert.equal(q.slots, 4);
  assert.equal(q.waiting, 0);
  // A job behind `waiting` others is expected after (waiting / slots + 1) x the mean run time:
  // with 2.6 x the mean allowed and nothing waiting, jobs 0 to 6 of one tick fit (job 6:
  // 6/4 + 1 = 2.5), job 7 on (2.75) do not.
  const limited = producer(t, { redis: r.url, queue: 'q', maxExpectedWait: 2.6 * q.meanRunTime });
  const outcomes = await Promise.allSettled(Array.from({ length: 40 }, (_, i) => limited.run(i, { name: 'work' })));
  const ok = outcomes.map((o) => o.status === 'fulfilled');
  assert.deepEqual(ok, Array.from({ length: 40 }, (_, i) => i <= 6));
  for (const o of outcomes.slice(7)) {
    assert.ok(o.reason instanceof PoolError);
    assert.equal(o.reason.code, codes.EXPECTED_WAIT);
    assert.ok(o.reason.expectedWait > 2.6 * q.meanRunTime - 1);
    assert.match(o.reason.message, /more than maxExpectedWait/);
  }
  assert.equal(limited.stats().rejected, 33);
  // 1 ms: everything is refused once warmed up.
  await assert.rejects(p.call('add', 1, 1), { code: codes.EXPECTED_WAIT });
  assert.throws(() => new Pool({ redis: r.url, queue: 'q', maxExpectedWait: -1 }), { code: codes.INVALID_OPTION });
});

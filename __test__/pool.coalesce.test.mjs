// Coalescing by `key` (issue 10, item 5): while a job with the same function name and key is
// queued or running, a new one joins it and settles with its outcome (its own copy). Proved
// with real workers that count their executions and hold jobs at a gate; never by timing.
import assert from 'node:assert/strict';
import test from 'node:test';
import { setImmediate as tick } from 'node:timers/promises';
import { TEST, fixture, openPool, rejectsWith, errorOf, codes } from './pool-helpers.mjs';

const mod = fixture('coalesce.js');

async function until(check, what) {
  for (let i = 0; ; i++) {
    if (await check()) return;
    if (i > 100000) throw new Error(`never: ${what}`);
    await tick();
  }
}

// One warm worker that runs several jobs at once (the gated one and the test's own calls).
async function warmPool(t, options) {
  const opened = openPool(t, { module: mod, maxWorkers: 1, concurrency: 8, ...options });
  const { pid } = await opened.pool.call('ran');
  return { ...opened, pid };
}

async function ran(pool, key) {
  return (await pool.call('ran')).ran[key] ?? 0;
}

test('100 callers with one key give 1 execution, each with its own copy of the value', TEST, async (t) => {
  const { pool, pid } = await warmPool(t);
  const calls = [];
  for (let i = 0; i < 100; i++) {
    calls.push(i % 2 === 0
      ? pool.run('x', { name: 'gated', key: 'k' })
      : pool.exec('gated', ['x'], { key: 'k' }));
  }
  // The same key with another function, or another key: jobs of their own.
  const other = pool.exec('quick', ['x'], { key: 'k' });
  const otherKey = pool.run('y', { name: 'gated', key: 'k2' });
  assert.equal(pool.pending, 102);
  assert.equal(pool.stats().coalesced, 99);
  assert.deepEqual(await other, { tag: 'x' });
  await pool.call('open');
  const results = await Promise.all(calls);
  const expected = { tag: 'x', pid, list: [1, 2, 3] };
  for (const r of results) assert.deepEqual(r, expected);
  assert.equal(new Set(results).size, 100, 'every caller has its own object');
  assert.equal(new Set(results.map((r) => r.list)).size, 100);
  assert.equal((await otherKey).tag, 'y');
  assert.equal(await ran(pool, 'gated:x'), 1);
  assert.equal(await ran(pool, 'gated:y'), 1);
  assert.equal(await ran(pool, 'quick:x'), 1);
  const s = pool.stats();
  assert.equal(s.coalesced, 99);
  assert.equal(s.pending, 0);
  assert.equal(pool.pending, 0);
});

test('the shared job fails: every caller gets an Error of the same shape, its own', TEST, async (t) => {
  const { pool } = await warmPool(t);
  const calls = [0, 1, 2].map(() => errorOf(pool.exec('fails', ['f'], { key: 'f' })));
  await pool.call('open');
  const errors = await Promise.all(calls);
  for (const e of errors) {
    assert.ok(e instanceof RangeError);
    assert.equal(e.message, 'bad f');
    assert.deepEqual(e.detail, { tag: 'f' });
    assert.equal(e.stack, errors[0].stack);
  }
  assert.equal(new Set(errors).size, 3);
  assert.equal(new Set(errors.map((e) => e.detail)).size, 3);
  assert.equal(await ran(pool, 'fails:f'), 1);
  // Over: the key is free again, and a new call runs anew.
  assert.equal((await errorOf(pool.exec('fails', ['f'], { key: 'f' }))).message, 'bad f');
  assert.equal(await ran(pool, 'fails:f'), 2);
});

test('the shared job is retried once when its worker dies, for every caller', TEST, async (t) => {
  const { pool, pid } = await warmPool(t);
  // The first caller's retries are the shared job's; the joiners' are not added to them.
  const calls = [
    pool.run('r', { name: 'gated', key: 'r', retries: 1 }),
    pool.run('r', { name: 'gated', key: 'r', retries: 5 }),
    pool.exec('gated', ['r'], { key: 'r' }),
  ];
  await until(async () => (await ran(pool, 'gated:r')) === 1, 'the shared job runs');
  process.kill(pid, 'SIGKILL');
  // The retry waits at the new worker's gate: open it there.
  let opened;
  await until(async () => {
    try {
      opened = await pool.call('ran');
    } catch (e) {
      assert.equal(e.code, codes.WORKER_EXITED);
      return false;
    }
    return opened.pid !== pid;
  }, 'a new worker');
  await until(async () => (await ran(pool, 'gated:r')) === 1, 'the retry runs');
  await pool.call('open');
  const results = await Promise.all(calls);
  for (const r of results) assert.deepEqual(r, { tag: 'r', pid: opened.pid, list: [1, 2, 3] });
  assert.equal(new Set(results).size, 3);
  assert.equal(pool.stats().retried, 1);
  assert.equal(pool.stats().coalesced, 2);
});

test('the shared job\'s worker dies (kill -9): every caller fails alike, each its own error', TEST, async (t) => {
  const { pool, pid } = await warmPool(t);
  const calls = [0, 1, 2, 3].map(() => errorOf(pool.run('d', { name: 'gated', key: 'd' })));
  await until(async () => (await ran(pool, 'gated:d')) === 1, 'the shared job runs');
  process.kill(pid, 'SIGKILL');
  const errors = await Promise.all(calls);
  for (const e of errors) {
    assert.equal(e.code, codes.WORKER_EXITED);
    assert.equal(e.name, 'PoolError');
    assert.equal(e.pid, pid);
    assert.equal(e.signal, 'SIGKILL');
    assert.equal(e.message, errors[0].message);
  }
  assert.equal(new Set(errors).size, 4);
  assert.equal(pool.pending, 0);
});

test('a caller that aborts or times out detaches alone; the others get the outcome', TEST, async (t) => {
  const { pool } = await warmPool(t);
  const ac = new AbortController();
  const first = pool.run('a', { name: 'gated', key: 'a' });
  const aborted = errorOf(pool.run('a', { name: 'gated', key: 'a', signal: ac.signal }));
  const timedOut = rejectsWith(pool.run('a', { name: 'gated', key: 'a', timeout: 20 }), codes.JOB_TIMEOUT);
  const last = pool.exec('gated', ['a'], { key: 'a' });
  await until(async () => (await ran(pool, 'gated:a')) === 1, 'the shared job runs');
  ac.abort();
  assert.equal((await aborted).name, 'AbortError');
  await timedOut;
  assert.equal(pool.pending, 2);
  await pool.call('open');
  assert.equal((await first).tag, 'a');
  assert.equal((await last).tag, 'a');
  assert.equal(await ran(pool, 'gated:a'), 1);
  const s = pool.stats();
  assert.equal(s.aborted, 1);
  assert.equal(s.timedOut, 1);
  assert.equal(s.coalesced, 3);
});

test('the shared job is cancelled only when every caller has gone', TEST, async (t) => {
  // cancelGraceMs 0: a cancelled running job's worker is killed at once, which shows here.
  const { pool, pid, log } = await warmPool(t, { cancelGraceMs: 0 });
  const controllers = [0, 1, 2].map(() => new AbortController());
  const calls = controllers.map((ac) => errorOf(pool.run('c', { name: 'gated', key: 'c', signal: ac.signal })));
  await until(async () => (await ran(pool, 'gated:c')) === 1, 'the shared job runs');
  controllers[0].abort();
  controllers[1].abort();
  // Two gone, one left: the worker still runs the shared job.
  assert.equal(await ran(pool, 'gated:c'), 1);
  assert.ok(!log.some(([e, info]) => e === 'workerExit' && info.pid === pid));
  controllers[2].abort();
  for (const e of await Promise.all(calls)) assert.equal(e.name, 'AbortError');
  await until(() => log.some(([e, info]) => e === 'workerExit' && info.pid === pid), 'the worker is cancelled');
  assert.equal(pool.pending, 0);
  assert.equal(pool.stats().aborted, 3);
  // The key is free: a new caller starts a new job.
  const again = pool.run('c', { name: 'gated', key: 'c' });
  await until(async () => (await ran(pool, 'gated:c')) === 1, 'a new job runs');
  await pool.call('open');
  assert.equal((await again).tag, 'c');
});

test('a caller arriving as the shared job settles joins it or starts a new one, and settles once', TEST, async (t) => {
  const { pool } = await warmPool(t);
  await pool.call('open');
  // Each outcome starts two more calls with the same key, from the outcome's own reaction, up
  // to 600 calls: every one settles exactly once, and no call hangs.
  let started = 0;
  let settled = 0;
  const all = [];
  const seen = new Set();
  function call() {
    started++;
    const id = started;
    const p = pool.run('s', { name: 'quick', key: 's' }).then((v) => {
      assert.ok(!seen.has(id), 'settled twice');
      seen.add(id);
      settled++;
      assert.deepEqual(v, { tag: 's' });
      if (started < 600) {
        call();
        call();
      }
    });
    all.push(p);
  }
  for (let i = 0; i < 10; i++) call();
  while (settled < started) await Promise.all(all.slice());
  assert.equal(settled, started);
  assert.ok(started >= 600);
  const executions = await ran(pool, 'quick:s');
  assert.ok(executions >= 1 && executions <= started, `${executions} executions`);
  assert.equal(pool.stats().coalesced, started - executions);
  assert.equal(pool.pending, 0);
});

test('key must be a non-empty string', TEST, async (t) => {
  const { pool } = openPool(t, { module: mod, maxWorkers: 1 });
  for (const key of ['', 5, null, {}, true]) {
    await rejectsWith(pool.run('x', { key }), codes.INVALID_ARGUMENT);
    await rejectsWith(pool.exec('quick', ['x'], { key }), codes.INVALID_ARGUMENT);
  }
  assert.equal(pool.pending, 0);
});

test('totalTimeout: a caller whose totalTimeout passes leaves alone (ERR_TOTAL_TIMEOUT); the shared job runs on for the others', TEST, async (t) => {
  const { pool } = await warmPool(t, { totalTimeout: Infinity });
  const events = [];
  pool.on('totalTimeout', (e) => events.push(e));
  // The first caller and a joiner each with a short totalTimeout, one more with none: the job
  // is held at the gate until both have left, so their deadlines pass while it runs.
  const first = errorOf(pool.run('t', { name: 'gated', key: 'kt', totalTimeout: 20 }));
  const joiner = errorOf(pool.exec('gated', ['t'], { key: 'kt', totalTimeout: 30 }));
  const stays = pool.run('t', { name: 'gated', key: 'kt' });
  const [e1, e2] = await Promise.all([first, joiner]);
  for (const e of [e1, e2]) {
    assert.equal(e.code, codes.TOTAL_TIMEOUT);
    assert.equal(e.pid, null);
    assert.match(e.message, /shared the job of its key/);
  }
  assert.deepEqual(events, [{ name: 'gated', pid: null }, { name: 'gated', pid: null }]);
  assert.equal(pool.stats().totalTimedOut, 2);
  await pool.call('open');
  assert.equal((await stays).tag, 't');
  assert.equal(await ran(pool, 'gated:t'), 1, 'one execution, never cancelled');
  assert.equal(pool.stats().aborted, 0);
});

test("the pool's totalTimeout applies to each caller of a shared job; the job is cancelled when the last has gone", TEST, async (t) => {
  const { pool } = openPool(t, { module: mod, maxWorkers: 1, concurrency: 8, totalTimeout: 40, cancelGraceMs: 0 });
  // Calls of the test's own say Infinity: a worker starting on a loaded machine may take longer
  // than 40 ms.
  const { pid } = await pool.exec('ran', [], { totalTimeout: Infinity });
  const calls = [0, 1, 2].map(() => errorOf(pool.run('p', { name: 'gated', key: 'kp' })));
  const errors = await Promise.all(calls);
  for (const e of errors) assert.equal(e.code, codes.TOTAL_TIMEOUT);
  assert.equal(pool.stats().totalTimedOut, 3);
  // Every caller left, so the shared job was cancelled: its worker (cancelGraceMs 0) was
  // killed and replaced, and a new call with the key runs anew.
  const again = await pool.run('p', { name: 'quick', key: 'kp', totalTimeout: Infinity });
  assert.equal(again.tag, 'p');
  assert.notEqual((await pool.exec('ran', [], { totalTimeout: Infinity })).pid, pid);
});

// Admission (maxBacklog, maxExpectedWait), arguments that cannot be sent, and option
// validation: invalid options throw synchronously with code ERR_INVALID_OPTION.
import assert from 'node:assert/strict';
import test from 'node:test';
import { Pool, PoolError, TEST, codes, fixture, openPool, rejectsWith, waitFor } from './pool-helpers.mjs';

const basic = fixture('basic.js');
const crash = fixture('crash.js');

test('maxBacklog: jobs beyond workers × concurrency + maxBacklog are refused with ERR_BACKLOG_FULL', TEST, async (t) => {
  const { pool } = openPool(t, { module: crash, maxWorkers: 2, concurrency: 2, maxBacklog: 3 });
  const outcomes = Array(10).fill('pending');
  const errs = [];
  let sync = true;
  for (let i = 0; i < 10; i++) {
    pool.call('hang').then(() => { outcomes[i] = 'resolved'; }, (e) => {
      outcomes[i] = { code: e.code, sync };
      errs[i] = e;
    });
  }
  sync = false;
  assert.equal(pool.pending, 10, 'refusals are not synchronous');
  await waitFor(() => outcomes.filter((o) => o !== 'pending').length === 3, 'three refusals');
  assert.deepEqual(outcomes, [
    ...Array(7).fill('pending'),
    ...Array(3).fill({ code: 'ERR_BACKLOG_FULL', sync: false }),
  ]);
  assert.equal(errs[9].maxBacklog, 3);
  assert.equal(errs[9].name, 'PoolError');
  assert.equal(pool.pending, 7);
  await pool.terminate();
  assert.ok(outcomes.slice(0, 7).every((o) => o.code === 'ERR_POOL_TERMINATED'));
});

test('maxBacklog: once the backlog drains, jobs are accepted again', TEST, async (t) => {
  const { pool } = openPool(t, { module: crash, maxWorkers: 1, maxBacklog: 2 });
  let pid;
  const held = rejectsWith(pool.run(null, { name: 'hang', onProgress: (p) => { pid = p; } }), 'ERR_WORKER_EXITED');
  await waitFor(() => pid !== undefined, 'the hanging job to start');
  const queued = [pool.call('echo', 1), pool.call('echo', 2)];
  const refused = await rejectsWith(pool.call('echo', 3), 'ERR_BACKLOG_FULL');
  assert.equal(refused.maxBacklog, 2);
  process.kill(pid, 'SIGKILL');
  await held;
  assert.deepEqual((await Promise.all(queued)).map((r) => r.v), [1, 2]);
  assert.equal((await pool.call('echo', 4)).v, 4);
});

test('maxBacklog: 0 refuses jobs that would wait, not jobs a worker can take', TEST, async (t) => {
  const { pool } = openPool(t, { module: crash, maxWorkers: 1, maxBacklog: 0 });
  assert.equal((await pool.call('echo', 1)).v, 1);
  assert.equal((await pool.call('echo', 2)).v, 2);
  // The one worker busy: the next job would wait, so it is refused.
  let pid;
  const held = pool.run(null, { name: 'hang', onProgress: (p) => { pid = p; } });
  held.catch(() => {});
  await waitFor(() => pid !== undefined, 'the hanging job to start');
  await rejectsWith(pool.call('echo', 3), 'ERR_BACKLOG_FULL');
});

test('maxExpectedWait: once run times are known, a job expected to finish too late is refused', TEST, async (t) => {
  const { pool } = openPool(t, { module: crash, maxWorkers: 1, maxExpectedWait: 800 });
  // Warm-up: the estimate needs a few completed jobs (more than 2 × maxWorkers).
  for (let i = 0; i < 3; i++) assert.equal(await pool.call('sleep', 100), 100);
  // Each job runs at least 100 ms on the one worker: with 8 or more ahead of it, a job would
  // finish more than 800 ms from now, whatever the machine's speed.
  const outcomes = Array(20).fill('pending');
  for (let i = 0; i < 20; i++) {
    pool.call('sleep', 100).then(() => { outcomes[i] = 'ok'; }, (e) => { outcomes[i] = e; });
  }
  const refused = () => outcomes.filter((o) => o.code === 'ERR_EXPECTED_WAIT');
  await waitFor(() => refused().length >= 10, 'refusals');
  assert.ok(outcomes[0] === 'pending' || outcomes[0] === 'ok', 'the first job is accepted');
  const firstRefused = outcomes.findIndex((o) => o.code === 'ERR_EXPECTED_WAIT');
  assert.ok(outcomes.slice(firstRefused).every((o) => o.code === 'ERR_EXPECTED_WAIT'),
    'once a job is refused, every later one of the same tick is too');
  for (const e of refused()) {
    assert.equal(e.name, 'PoolError');
    assert.equal(typeof e.expectedWait, 'number');
    assert.ok(e.expectedWait > 800);
  }
  await pool.terminate();
});

test('arguments that cannot be serialized reject ERR_UNSERIALIZABLE asynchronously', TEST, async (t) => {
  const { pool, spawned } = openPool(t, { module: basic, maxWorkers: 1 });
  const cyclic = { a: 1 };
  cyclic.self = cyclic;
  let sync = true;
  const order = [];
  const jobs = [
    pool.call('identity', 10n),
    pool.run({ nested: [1, 2, 3n] }),
    pool.call('identity', cyclic),
    pool.run(1, { name: 'identity' }),
  ].map((p, i) => p.then((v) => { order.push(i); return v; }, (e) => { order.push(i); return { e, sync }; }));
  sync = false;
  const [big, nestedBig, cyc, fine] = await Promise.all(jobs);
  for (const r of [big, nestedBig, cyc]) {
    assert.equal(r.sync, false, 'not rejected synchronously');
    assert.equal(r.e.code, 'ERR_UNSERIALIZABLE');
    assert.ok(r.e instanceof PoolError);
  }
  assert.match(big.e.message, /BigInt/);
  assert.equal(fine, 1, 'a good job in the same tick runs');
  const cb = await new Promise((resolve) => pool.enqueue(5n, (...args) => resolve(args)));
  assert.equal(cb[0].code, 'ERR_UNSERIALIZABLE');
  assert.equal(pool.pending, 0);
  assert.equal(await pool.call('add', 1, 2), 3);
  assert.equal(spawned.length, 1);
});

test('invalid run()/call() arguments reject ERR_INVALID_ARGUMENT', TEST, async (t) => {
  const { pool } = openPool(t, { module: basic, maxWorkers: 1 });
  await rejectsWith(pool.call(42), 'ERR_INVALID_ARGUMENT');
  await rejectsWith(pool.run(1, 'name'), 'ERR_INVALID_ARGUMENT');
  await rejectsWith(pool.run(1, { name: 5 }), 'ERR_INVALID_ARGUMENT');
  await rejectsWith(pool.run(1, { onProgress: 'x' }), 'ERR_INVALID_ARGUMENT');
  assert.equal(await pool.run(1, { name: null }).then((r) => r.echoed), 1, 'name null is the default');
});

test('a command that does not exist: jobs reject ERR_SPAWN_FAILED', TEST, async (t) => {
  const { pool } = openPool(t, { command: ['/nonexistent/comrade-worker-binary'], maxWorkers: 2 });
  const errs = await Promise.all([1, 2, 3].map((i) => rejectsWith(pool.run(i), 'ERR_SPAWN_FAILED')));
  assert.ok(errs.every((e) => e.name === 'PoolError'));
  const bare = openPool(t, { command: ['comrade-no-such-program-in-path'], maxWorkers: 1 }).pool;
  await rejectsWith(bare.call('x'), 'ERR_SPAWN_FAILED');
  // And again, later: no hang.
  await rejectsWith(pool.run(4), 'ERR_SPAWN_FAILED');
});

test('invalid options throw synchronously: a PoolError with ERR_INVALID_OPTION', () => {
  const cases = [
    [undefined, PoolError],
    [null, PoolError],
    ['module.js', PoolError],
    [{}, PoolError],
    [{ module: basic, command: ['node'] }, PoolError],
    [{ module: 42 }, PoolError],
    [{ module: '' }, PoolError],
    [{ module: fixture('nope.js') }, PoolError],
    [{ command: [] }, PoolError],
    [{ command: [1, 2] }, PoolError],
    [{ module: basic, maxWorkers: 0 }, PoolError],
    [{ module: basic, maxWorkers: -1 }, PoolError],
    [{ module: basic, maxWorkers: 1.5 }, PoolError],
    [{ module: basic, maxWorkers: '2' }, PoolError],
    [{ module: basic, maxWorkers: NaN }, PoolError],
    [{ module: basic, concurrency: 0 }, PoolError],
    [{ module: basic, concurrency: Infinity }, PoolError],
    [{ module: basic, maxBacklog: -1 }, PoolError],
    [{ module: basic, maxBacklog: 1.5 }, PoolError],
    [{ module: basic, maxExpectedWait: 0 }, PoolError],
    [{ module: basic, maxExpectedWait: 'soon' }, PoolError],
    [{ module: basic, maxMessage: 0 }, PoolError],
    [{ module: basic, killGraceMs: -1 }, PoolError],
    [{ module: basic, niceIncrement: -1 }, PoolError],
    [{ module: basic, niceIncrement: 20 }, PoolError],
    [{ module: basic, niceIncrement: 1.5 }, PoolError],
    [{ module: basic, niceIncrement: '5' }, PoolError],
    [{ module: basic, env: null }, PoolError],
    [{ module: basic, env: 'A=1' }, PoolError],
    [{ module: basic, cwd: 5 }, PoolError],
    [{ module: basic, execArgv: '--foo' }, PoolError],
    [{ module: basic, execArgv: [1] }, PoolError],
    [{ module: basic, initData: 1n }, PoolError],
    [{ module: basic, initData: () => {} }, PoolError],
  ];
  const cyclic = {};
  cyclic.self = cyclic;
  cases.push([{ module: basic, initData: cyclic }, PoolError]);
  for (const [options, Ctor] of cases) {
    let thrown;
    try {
      new Pool(options);
    } catch (e) {
      thrown = e;
    }
    const what = `new Pool(${describe(options)})`;
    assert.ok(thrown, `${what} should throw`);
    assert.equal(thrown.code, codes.INVALID_OPTION, `${what}: code ${thrown.code}`);
    assert.ok(thrown instanceof Ctor, `${what}: ${thrown.name}, expected ${Ctor.name}`);
    assert.match(thrown.message, /^comrade Pool: /);
  }
});

test('valid edge values are accepted', TEST, async (t) => {
  const { pool } = openPool(t, {
    module: basic,
    maxWorkers: 1,
    concurrency: 1,
    maxBacklog: Infinity,
    killGraceMs: 0,
    initData: null,
    env: { UNSET_ME: undefined },
    execArgv: [],
  });
  assert.equal(await pool.call('add', 1, 2), 3);
  assert.equal(await pool.call('env', 'UNSET_ME'), null);
  assert.equal(codes.INVALID_OPTION, 'ERR_INVALID_OPTION');
  assert.ok(Object.isFrozen(codes));
  // maxBacklog Infinity: no limit. 2,000 jobs queued at once on one worker are all accepted.
  const many = await Promise.allSettled(Array.from({ length: 2000 }, (_, i) => pool.call('add', i, 1)));
  const refused = many.filter((r) => r.status === 'rejected');
  assert.deepEqual(refused.slice(0, 3).map((r) => r.reason.code), [], 'maxBacklog: Infinity refused jobs');
  assert.deepEqual(many.map((r) => r.value), Array.from({ length: 2000 }, (_, i) => i + 1));
  // killGraceMs 0: a worker that ignores SIGTERM is SIGKILLed at once, not after a grace
  // period (the marker is far short of the 5 s default).
  const stubborn = openPool(t, { module: fixture('stubborn.js'), maxWorkers: 1, killGraceMs: 0 });
  const pid = await stubborn.pool.call('pid');
  let marker;
  const closed = await Promise.race([
    stubborn.pool.close().then(() => 'closed'),
    new Promise((resolve) => { marker = setTimeout(resolve, 3000, 'marker'); }),
  ]);
  clearTimeout(marker);
  assert.equal(closed, 'closed', 'killGraceMs: 0 waited for a grace period');
  const exit = stubborn.log.find((e) => e[0] === 'workerExit' && e[1].pid === pid);
  assert.equal(exit && exit[1].signal, 'SIGKILL');
});

test('maxMessage: a result larger than the limit fails the job, the worker goes on', TEST, async (t) => {
  const { pool, log } = openPool(t, { module: basic, maxWorkers: 1, maxMessage: 4096 });
  const pid = await pool.call('pid');
  // The worker knows the limit: the job fails there, before anything is sent (issue 14, point 7;
  // __test__/pool.result-size.test.mjs has the rest).
  const err = await rejectsWith(pool.call('repeat', 'x', 10000), 'ERR_MESSAGE_TOO_LARGE');
  assert.equal(err.maxMessage, 4096);
  assert.equal(await pool.call('pid'), pid);
  assert.ok(!log.some((e) => e[0] === 'protocolError' || e[0] === 'workerExit'));
});

test('maxMessage: arguments larger than the limit are refused before they reach a worker', TEST, async (t) => {
  const { pool, log } = openPool(t, { module: basic, maxWorkers: 1, maxMessage: 4096 });
  const err = await rejectsWith(pool.call('identity', 'x'.repeat(10000)), 'ERR_MESSAGE_TOO_LARGE');
  assert.equal(err.maxMessage, 4096);
  // Multi-byte characters count in bytes: 1500 × 3 bytes is over the limit, 1500 characters not.
  await rejectsWith(pool.call('identity', '€'.repeat(1500)), 'ERR_MESSAGE_TOO_LARGE');
  assert.equal(await pool.call('identity', 'x'.repeat(4000)), 'x'.repeat(4000));
  assert.equal(pool.stats().rejected, 2);
  assert.ok(!log.some((e) => e[0] === 'protocolError'));
});

function describe(options) {
  try {
    return JSON.stringify(options, (k, v) => (typeof v === 'bigint' ? `${v}n` : v)) ?? String(options);
  } catch {
    return '{…cyclic…}';
  }
}

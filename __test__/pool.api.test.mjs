// issue 14, points 1, 3, 8 and 10: exec(name, args, options), one error model (PoolError with a
// code of `codes`, a DOMException AbortError, workerExit's reason, aborted and timed-out jobs in
// stats()), unknown options refused with the closest known one, throughput from the first job,
// the exports listed for an unknown function, and a worker error without a stack keeping none.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import test from 'node:test';
import {
  Pool, PoolError, codes, TEST, entries, errorOf, fixture, openPool, rejectsWith, repoRoot, waitFor,
} from './pool-helpers.mjs';

const worker = fixture('exec.js');
const CODES = new Set(Object.values(codes));

/** Asserts that `err` is a PoolError with `code`, a code of `codes`. */
function assertPoolError(err, code) {
  assert.ok(err instanceof PoolError, `a PoolError, got ${err && err.name}: ${err && err.message}`);
  assert.equal(err.name, 'PoolError');
  assert.equal(err.code, code);
  assert.ok(CODES.has(code), `${code} is in codes`);
}

/** The workerExit infos of `log`, in order. */
const exitsOf = (log) => entries(log, 'workerExit').map((e) => e[1]);

/**
 * Starts `spin` (runaway synchronous code) with `options` and resolves once it runs on its
 * worker (its marker file exists): `{ job }`, the job's error.
 */
async function spinning(t, pool, options) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'comrade-api-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const marker = path.join(dir, 'running');
  const job = errorOf(pool.exec('spin', [marker], options));
  await waitFor(() => fs.existsSync(marker), 'the job to run');
  return { job };
}

test('exec(name, args) runs the named function with the array as its arguments', TEST, async (t) => {
  const { pool } = openPool(t, { module: worker, maxWorkers: 1 });
  assert.equal(await pool.exec('add', [2, 3]), 5);
  assert.deepEqual(await pool.exec('args', [1, 'two', { three: 3 }, null, [4]]),
    [1, 'two', { three: 3 }, null, [4]]);
  // No arguments: [] or left out (null too, as workerpool takes it).
  assert.deepEqual(await pool.exec('args', []), []);
  assert.deepEqual(await pool.exec('args'), []);
  assert.deepEqual(await pool.exec('args', null), []);
  assert.deepEqual(await pool.exec('args', undefined, { retries: 0 }), []);
  // The array is the argument list, not one argument.
  assert.deepEqual(await pool.exec('args', [[1, 2]]), [[1, 2]]);
  // An undefined argument is null, as in call().
  assert.deepEqual(await pool.exec('args', [undefined]), await pool.call('args', undefined));
});

test('exec() takes every per-job option: onProgress, timeout, retries, signal', TEST, async (t) => {
  const { pool, log } = openPool(t, { module: worker, maxWorkers: 1, spawnDelay: 0 });
  const seen = [];
  assert.equal(await pool.exec('countdown', [3], { onProgress: (v) => seen.push(v) }), 'liftoff');
  assert.deepEqual(seen, [3, 2, 1]);

  // timeout: runaway code fails ERR_JOB_TIMEOUT, its worker is replaced.
  const late = await rejectsWith(pool.exec('spin', [], { timeout: 100 }), 'ERR_JOB_TIMEOUT');
  assertPoolError(late, 'ERR_JOB_TIMEOUT');
  assert.equal(await pool.exec('add', [1, 1]), 2);

  // retries: a job whose worker dies runs again, as many times as asked.
  const before = pool.stats().retried;
  await rejectsWith(pool.exec('crash', [], { retries: 2 }), 'ERR_WORKER_EXITED');
  assert.equal(pool.stats().retried - before, 2);
  assert.equal(exitsOf(log).filter((e) => e.reason === 'crash').length, 3, 'run three times');

  // signal: aborted before the call, and while the job runs.
  const early = new AbortController();
  early.abort('gone');
  const pre = await errorOf(pool.exec('add', [1, 2], { signal: early.signal }));
  assert.equal(pre.name, 'AbortError');
  assert.equal(pre.cause, 'gone');
  const ac = new AbortController();
  const running = await spinning(t, pool, { signal: ac.signal });
  ac.abort();
  const err = await running.job;
  assert.equal(err.name, 'AbortError');
  assert.equal(await pool.exec('add', [2, 2]), 4);
});

test('exec() refuses a wrong name, args or option: the Promise rejects, nothing runs', TEST, async (t) => {
  const { pool, spawned } = openPool(t, { module: worker, maxWorkers: 1 });
  assertPoolError(await errorOf(pool.exec(5, [])), 'ERR_INVALID_ARGUMENT');
  assertPoolError(await errorOf(pool.exec('add', 'two and three')), 'ERR_INVALID_ARGUMENT');
  assertPoolError(await errorOf(pool.exec('add', { 0: 1, length: 1 })), 'ERR_INVALID_ARGUMENT');
  assertPoolError(await errorOf(pool.exec('add', [1, 2], 'fast')), 'ERR_INVALID_ARGUMENT');
  assertPoolError(await errorOf(pool.exec('args', [1n])), 'ERR_UNSERIALIZABLE');
  // The name is exec's first argument, never an option.
  const named = await errorOf(pool.exec('add', [1, 2], { name: 'args' }));
  assertPoolError(named, 'ERR_INVALID_OPTION');
  assert.match(named.message, /first argument/);
  const typo = await errorOf(pool.exec('add', [1, 2], { timout: 100 }));
  assertPoolError(typo, 'ERR_INVALID_OPTION');
  assert.match(typo.message, /unknown exec\(\) option "timout" \(did you mean timeout\?\)/);
  assertPoolError(await errorOf(pool.exec('add', [1, 2], { timeout: -1 })), 'ERR_INVALID_ARGUMENT');
  assert.equal(spawned.length, 0, 'no refused job started a worker');
  assert.equal(pool.pending, 0);
  assert.equal(await pool.exec('add', [1, 2]), 3);
});

test('unknown options are refused with the closest known one: constructor, run(), exec()', TEST, async (t) => {
  const thrown = (options) => {
    try {
      new Pool({ module: worker, ...options });
    } catch (e) {
      return e;
    }
    return assert.fail(`new Pool(${Object.keys(options)}) did not throw`);
  };
  const typo = thrown({ maxWorker: 2 });
  assertPoolError(typo, 'ERR_INVALID_OPTION');
  assert.equal(typo.message, 'comrade Pool: unknown option "maxWorker" (did you mean maxWorkers?)');
  assert.match(thrown({ idletimeout: 5 }).message, /\(did you mean idleTimeout\?\)$/);
  assert.match(thrown({ concurency: 2 }).message, /\(did you mean concurrency\?\)$/);
  // Nothing close: the known options are listed.
  const far = thrown({ frobnicate: true });
  assertPoolError(far, 'ERR_INVALID_OPTION');
  assert.match(far.message, /^comrade Pool: unknown option "frobnicate" \(known: maxWorkers, .*command, serialization\)$/);
  // Even with an undefined value, a typo is a typo.
  assertPoolError(thrown({ maxWorker: undefined }), 'ERR_INVALID_OPTION');
  // A valid pool with every option spelled right still opens.
  const { pool, spawned } = openPool(t, { module: worker, maxWorkers: 1, idleTimeout: 10000 });

  const runTypo = await errorOf(pool.run(1, { timout: 100 }));
  assertPoolError(runTypo, 'ERR_INVALID_OPTION');
  assert.equal(runTypo.message, 'comrade Pool: unknown run() option "timout" (did you mean timeout?)');
  assert.match((await errorOf(pool.run(1, { onprogress: () => {} }))).message,
    /did you mean onProgress\?/);
  assert.match((await errorOf(pool.run(1, { nmae: 'add' }))).message, /did you mean name\?/);
  assert.match((await errorOf(pool.run(1, { weight: 1 }))).message,
    /unknown run\(\) option "weight" \(known: name, onProgress, signal, timeout, retries, priority, queueTimeout, totalTimeout, group, key\)/);
  assert.match((await errorOf(pool.run(1, { priorty: 1 }))).message, /did you mean priority\?/);
  assert.match((await errorOf(pool.exec('add', [1, 2], { retry: 1 }))).message,
    /unknown exec\(\) option "retry" \(did you mean retries\?\)/);
  assert.equal(spawned.length, 0, 'no refused job started a worker');
  // Known options still work, with the typed name.
  assert.deepEqual(await pool.run(4, { timeout: 5000, retries: 0 }), { doubled: 8 });
  assert.equal(await pool.run(3, { name: 'countdown', onProgress: () => {} }), 'liftoff');
});

test('every error the pool itself raises is a PoolError with a code of codes', TEST, async (t) => {
  // ERR_INVALID_OPTION, thrown by the constructor.
  let e;
  try {
    new Pool({ module: worker, maxWorkers: 0 });
  } catch (err) {
    e = err;
  }
  assertPoolError(e, 'ERR_INVALID_OPTION');
  try {
    new Pool({ module: worker, affinity: 'yes' });
  } catch (err) {
    e = err;
  }
  assertPoolError(e, 'ERR_INVALID_OPTION');
  const { pool } = openPool(t, { module: worker, maxWorkers: 1 });
  // ERR_INVALID_ARGUMENT: rejected, or thrown by enqueue().
  assertPoolError(await errorOf(pool.call(42)), 'ERR_INVALID_ARGUMENT');
  assertPoolError(await errorOf(pool.run(1, { timeout: 'soon' })), 'ERR_INVALID_ARGUMENT');
  assert.throws(() => pool.enqueue(1), (err) => {
    assertPoolError(err, 'ERR_INVALID_ARGUMENT');
    return true;
  });
  // ERR_UNSERIALIZABLE.
  assertPoolError(await errorOf(pool.call('args', 1n)), 'ERR_UNSERIALIZABLE');
  assertPoolError(await errorOf(pool.run(() => {})), 'ERR_UNSERIALIZABLE');
  // ERR_UNKNOWN_FUNCTION, raised in the worker, is in codes and arrives as a PoolError whose
  // message lists what the module exports.
  assert.equal(codes.UNKNOWN_FUNCTION, 'ERR_UNKNOWN_FUNCTION');
  const unknown = await errorOf(pool.exec('nope', []));
  assertPoolError(unknown, 'ERR_UNKNOWN_FUNCTION');
  assert.equal(unknown.message, `no function named "nope" in ${worker} (it exports: add, args, ` +
    'countdown, pid, crash, spin, retireMe, garbage, stackless, and a default function)');
  assert.equal(unknown.stack, undefined, 'no stack of comrade\'s insides');
  assertPoolError(await errorOf(pool.run(1, { name: 'nope' })), 'ERR_UNKNOWN_FUNCTION');
  // ERR_POOL_CLOSED.
  await pool.close();
  assertPoolError(await errorOf(pool.exec('add', [1, 2])), 'ERR_POOL_CLOSED');
  // ERR_MESSAGE_TOO_LARGE, for arguments (in the host) and for a result (in the worker).
  const small = openPool(t, { module: worker, maxWorkers: 1, maxMessage: 4096 }).pool;
  assertPoolError(await errorOf(small.exec('args', ['x'.repeat(5000)])), 'ERR_MESSAGE_TOO_LARGE');
  const big = await errorOf(small.exec('args', Array(1000).fill('abcd')));
  assertPoolError(big, 'ERR_MESSAGE_TOO_LARGE');
  assert.equal(big.maxMessage, 4096);
});

test('a native worker\'s ERR_UNKNOWN_FUNCTION and ERR_MESSAGE_TOO_LARGE arrive as PoolErrors too', {
  ...TEST, skip: spawnSync('python3', ['--version']).status !== 0 && 'no python3',
}, async (t) => {
  const { pool } = openPool(t, {
    command: ['python3', path.join(repoRoot, 'examples', 'python', 'worker.py')],
    maxWorkers: 1, maxMessage: 4096,
  });
  assertPoolError(await errorOf(pool.exec('nope', [1])), 'ERR_UNKNOWN_FUNCTION');
  // Arguments within maxMessage (4085 bytes), a result over it (about 4100).
  const big = await errorOf(pool.exec('add', ['x'.repeat(2040), 'y'.repeat(2040)]));
  assertPoolError(big, 'ERR_MESSAGE_TOO_LARGE');
  // The worker's own errors keep their class.
  const own = await errorOf(pool.exec('upper', [5]));
  assert.ok(!(own instanceof PoolError), `${own.name}: ${own.message}`);
});

test('an abort is a DOMException named AbortError, code ABORT_ERR, with the reason as cause', TEST, async (t) => {
  const { pool, log } = openPool(t, { module: worker, maxWorkers: 1 });
  const ac = new AbortController();
  const otherReason = new AbortController();
  otherReason.abort(new Error('client hung up'));
  const pre = errorOf(pool.run(1, { signal: otherReason.signal }));
  const running = await spinning(t, pool, { signal: ac.signal });
  // Behind the running job on the only worker.
  const queued = errorOf(pool.run(5, { signal: ac.signal }));
  assert.equal(pool.pending, 2);
  const reason = { why: 'shutting the tab' };
  ac.abort(reason);
  for (const err of [await running.job, await queued]) {
    assert.ok(err instanceof DOMException, `a DOMException, got ${err}`);
    assert.ok(err instanceof Error);
    assert.equal(err.name, 'AbortError');
    assert.equal(err.code, 'ABORT_ERR');
    assert.equal(err.code, codes.ABORTED);
    assert.equal(err.cause, reason);
  }
  const early = await pre;
  assert.ok(early instanceof DOMException);
  assert.equal(early.cause, otherReason.signal.reason);
  // The worker that ran the aborted job was killed by the pool: not a crash.
  await waitFor(() => exitsOf(log).length === 1, 'the worker\'s exit');
  assert.deepEqual(exitsOf(log).map(({ reason: r, expected }) => [r, expected]), [['aborted', true]]);
  const s = pool.stats();
  assert.equal(s.aborted, 3);
  assert.equal(s.timedOut, 0);
});

test('stats() counts aborted and timed-out jobs; throughput counts from the first job', TEST, async (t) => {
  const { pool } = openPool(t, { module: worker, maxWorkers: 1 });
  const s0 = pool.stats();
  assert.equal(s0.aborted, 0);
  assert.equal(s0.timedOut, 0);
  assert.equal(s0.throughput, 0);
  assert.equal(await pool.exec('add', [1, 2]), 3);
  assert.ok(pool.stats().throughput > 0, `throughput after one job: ${pool.stats().throughput}`);
  await rejectsWith(pool.exec('spin', [], { timeout: 50 }), 'ERR_JOB_TIMEOUT');
  await rejectsWith(pool.run(1, { name: 'spin', timeout: 50 }), 'ERR_JOB_TIMEOUT');
  const ac = new AbortController();
  ac.abort();
  await errorOf(pool.exec('add', [1, 2], { signal: ac.signal }));
  const s = pool.stats();
  assert.equal(s.timedOut, 2);
  assert.equal(s.aborted, 1);
  assert.equal(s.completed, 1);
});

test('workerExit says why the worker ended; expected is false only for a crash', TEST, async (t) => {
  const reasons = [];
  const see = (log) => exitsOf(log).map(({ reason, expected }) => [reason, expected]);

  // crash
  {
    const { pool, log } = openPool(t, { module: worker, maxWorkers: 1 });
    const pid = await pool.exec('pid');
    await rejectsWith(pool.exec('crash'), 'ERR_WORKER_EXITED');
    await waitFor(() => exitsOf(log).length === 1, 'the crash');
    assert.deepEqual(exitsOf(log)[0], { pid, code: 3, signal: null, expected: false, reason: 'crash' });
    reasons.push(...see(log));
  }
  // idle
  {
    const { pool, log } = openPool(t, { module: worker, maxWorkers: 1, idleTimeout: 50 });
    await pool.exec('add', [1, 2]);
    await waitFor(() => exitsOf(log).length === 1, 'the idle stop');
    reasons.push(...see(log));
  }
  // recycled
  {
    const { pool, log } = openPool(t, { module: worker, maxWorkers: 1, maxJobsPerWorker: 1 });
    await pool.exec('add', [1, 2]);
    await waitFor(() => exitsOf(log).length === 1, 'the recycling');
    reasons.push(...see(log));
  }
  // retired
  {
    const { pool, log } = openPool(t, { module: worker, maxWorkers: 1 });
    await pool.exec('retireMe');
    await waitFor(() => exitsOf(log).length === 1, 'the retirement');
    reasons.push(...see(log));
  }
  // memory: every worker is over one byte of RSS, so it is retired at the first check.
  {
    const { pool, log } = openPool(t, { module: worker, maxWorkers: 1, maxRss: 1 });
    await pool.exec('add', [1, 2]);
    await waitFor(() => exitsOf(log).length === 1, 'the memory retirement');
    assert.equal(entries(log, 'workerRetire').length, 1);
    reasons.push(...see(log));
  }
  // timeout
  {
    const { pool, log } = openPool(t, { module: worker, maxWorkers: 1 });
    await rejectsWith(pool.exec('spin', [], { timeout: 50 }), 'ERR_JOB_TIMEOUT');
    await waitFor(() => exitsOf(log).length === 1, 'the timeout kill');
    reasons.push(...see(log));
  }
  // aborted
  {
    const { pool, log } = openPool(t, { module: worker, maxWorkers: 1 });
    const ac = new AbortController();
    const running = await spinning(t, pool, { signal: ac.signal });
    ac.abort();
    await running.job;
    await waitFor(() => exitsOf(log).length === 1, 'the abort kill');
    reasons.push(...see(log));
  }
  // protocol
  {
    const { pool, log } = openPool(t, { module: worker, maxWorkers: 1 });
    await rejectsWith(pool.exec('garbage'), 'ERR_WORKER_EXITED');
    await waitFor(() => exitsOf(log).length === 1, 'the protocol kill');
    assert.equal(entries(log, 'protocolError').length, 1);
    reasons.push(...see(log));
  }
  // shutdown
  {
    const { pool, log } = openPool(t, { module: worker, maxWorkers: 1 });
    await pool.exec('add', [1, 2]);
    await pool.close();
    reasons.push(...see(log));
  }
  assert.deepEqual(reasons, [
    ['crash', false], ['idle', true], ['recycled', true], ['retired', true], ['memory', true],
    ['timeout', true], ['aborted', true], ['protocol', true], ['shutdown', true],
  ]);
});

test('a worker error without a stack keeps none; one with a stack keeps the worker\'s', TEST, async (t) => {
  const { pool } = openPool(t, { module: worker, maxWorkers: 1 });
  const err = await errorOf(pool.exec('stackless'));
  assert.ok(err instanceof RangeError);
  assert.equal(err.message, 'no stack here');
  assert.equal(err.code, 'E_STACKLESS');
  assert.equal(err.stack, undefined, `no stack of the host's: ${err.stack}`);
  assert.equal(Object.hasOwn(err, 'stack'), false);
});

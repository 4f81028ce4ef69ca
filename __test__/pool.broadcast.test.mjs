// pool.broadcast(message): every live worker's onMessage handlers get the message, and the
// Promise resolves with the number of workers that acknowledged it. Real Node workers
// (fixtures/pool/broadcast.js), the Rust example worker and the Python example. Nothing here
// depends on timing: a handler that must still be running waits for a file the test creates.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { before, describe, test } from 'node:test';
import {
  PoolError, TEST, entries, errorOf, fixture, openPool, rejectsWith, repoRoot, waitFor,
} from './pool-helpers.mjs';

const md5Worker = path.join(repoRoot, 'target', 'debug', 'examples', 'md5_worker');
const pythonWorker = path.join(repoRoot, 'examples', 'python', 'worker.py');
const hasPython = spawnSync('python3', ['--version']).status === 0;

const open = (t, options = {}) => openPool(t, { module: fixture('broadcast.js'), ...options });

/** A file path in a fresh directory (removed after the test): created by release(). */
function gate(t) {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'comrade-bcast-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'go');
  return { file, release: () => writeFileSync(file, '') };
}

/** Pids of the 'event' entries named `name` whose data is `data` (deep-equal), sorted. */
function eventPids(log, name, data) {
  return entries(log, 'event')
    .filter(([, n, d]) => n === name && (data === undefined || JSON.stringify(d) === JSON.stringify(data)))
    .map((e) => e[3])
    .sort((a, b) => a - b);
}

/** Starts `n` workers (minWorkers) and waits until each has answered a job. */
async function warm(pool, n) {
  await waitFor(() => pool.pids.length === n, `${n} workers`, 20000);
  const seen = new Set();
  while (seen.size < n) {
    const pids = await Promise.all(Array.from({ length: 4 * n }, () => pool.call('pid')));
    pids.forEach((p) => seen.add(p));
  }
  return [...seen].sort((a, b) => a - b);
}

describe('pool.broadcast() with Node workers', () => {
  test('reaches every live worker, while jobs run on them, with concurrency > 1', TEST, async (t) => {
    const { pool, log } = open(t, { maxWorkers: 3, minWorkers: 3, concurrency: 2 });
    const pids = await warm(pool, 3);
    const { file, release } = gate(t);
    // One slot of each worker is busy until the gate opens.
    const running = Array.from({ length: 3 }, () => pool.call('waitFile', file));
    const reached = await pool.broadcast({ config: 'v2', list: [1, 'ü', null] });
    assert.equal(reached, 3);
    // Each worker's handler ran once, with the message as sent, before the broadcast resolved.
    assert.deepEqual(eventPids(log, 'got'), pids);
    for (const [, , data] of entries(log, 'event')) {
      assert.deepEqual(data, { config: 'v2', list: [1, 'ü', null] });
    }
    // The jobs were never interrupted.
    release();
    assert.deepEqual((await Promise.all(running)).sort((a, b) => a - b), pids);
    // Every handler kept the message, in order with a second one.
    assert.equal(await pool.broadcast('second'), 3);
    const seen = await Promise.all(Array.from({ length: 12 }, () => pool.call('seen')));
    for (const s of seen) assert.deepEqual(s, [{ config: 'v2', list: [1, 'ü', null] }, 'second']);
  });

  test('any JSON value is a message; undefined arrives as null', TEST, async (t) => {
    const { pool, log } = open(t, { maxWorkers: 1, minWorkers: 1 });
    await warm(pool, 1);
    for (const m of [0, 'text', [1, [2]], null, true, { a: { b: 'é✓' } }]) {
      assert.equal(await pool.broadcast(m), 1);
    }
    assert.equal(await pool.broadcast(), 1);
    assert.deepEqual(entries(log, 'event').map((e) => e[2]),
      [0, 'text', [1, [2]], null, true, { a: { b: 'é✓' } }, null]);
  });

  test('a worker without an onMessage handler acknowledges (counted as reached)', TEST, async (t) => {
    const { pool } = openPool(t, { module: fixture('basic.js'), maxWorkers: 2, minWorkers: 2 });
    await waitFor(() => pool.pids.length === 2, 'two workers', 20000);
    assert.equal(await pool.broadcast({ ignored: true }), 2);
    assert.equal(await pool.call('add', 1, 2), 3, 'the workers go on');
  });

  test('no live worker: resolves with 0 at once; a worker started later does not get it', TEST, async (t) => {
    const { pool: empty } = open(t, { maxWorkers: 2, minWorkers: 0 });
    assert.equal(await empty.broadcast('nobody'), 0);
    assert.deepEqual(empty.pids, [], 'a broadcast starts no worker');
    const { pool, log } = open(t, { maxWorkers: 2, minWorkers: 1, concurrency: 1 });
    const { file, release } = gate(t);
    // One worker, held by a pending broadcast; then a second worker starts for jobs.
    const first = await pool.call('pid');
    const pending = pool.broadcast({ hold: file });
    await waitFor(() => eventPids(log, 'holding').length === 1, 'the handler holding', 20000);
    const jobs = [pool.call('waitFile', file), pool.call('waitFile', file)];
    await waitFor(() => pool.pids.length === 2, 'a second worker', 20000);
    const second = pool.pids.find((p) => p !== first);
    release();
    assert.equal(await pending, 1);
    await Promise.all(jobs);
    assert.deepEqual(eventPids(log, 'got', { hold: file }), [first]);
    assert.ok(!eventPids(log, 'got').includes(second), 'the later worker never got it');
  });

  test('a worker SIGKILLed while the broadcast waits for it: resolves with the survivors', TEST, async (t) => {
    const { pool, log } = open(t, { maxWorkers: 3, minWorkers: 3, concurrency: 2 });
    const pids = await warm(pool, 3);
    const { file, release } = gate(t);
    const pending = pool.broadcast({ hold: file });
    await waitFor(() => eventPids(log, 'holding').length === 3, 'every handler holding', 20000);
    const victim = pids[1];
    process.kill(victim, 'SIGKILL');
    await waitFor(() => entries(log, 'workerExit').some(([, e]) => e.pid === victim),
      'the kill seen', 20000);
    release();
    assert.equal(await pending, 2);
    // The replacement (minWorkers) did not get it; the pool goes on.
    assert.equal(eventPids(log, 'got', { hold: file }).length, 3);
    assert.equal(await pool.broadcast('after'), 3);
  });

  test('every worker SIGKILLed while it waits: resolves with 0, never hangs', TEST, async (t) => {
    const { pool, log } = open(t, { maxWorkers: 2, minWorkers: 2 });
    const pids = await warm(pool, 2);
    const { file } = gate(t);
    const pending = pool.broadcast({ hold: file });
    await waitFor(() => eventPids(log, 'holding').length === 2, 'both handlers holding', 20000);
    for (const pid of pids) process.kill(pid, 'SIGKILL');
    assert.equal(await pending, 0);
  });

  test('a worker retired before its ack is not waited for, nor counted', TEST, async (t) => {
    const { pool, log } = open(t, { maxWorkers: 2, minWorkers: 2 });
    const pids = await warm(pool, 2);
    const { file, release } = gate(t);
    const pending = pool.broadcast({ hold: file, retirePid: pids[0] });
    await waitFor(() => entries(log, 'workerRetire').length === 1, 'the retirement', 20000);
    await waitFor(() => eventPids(log, 'holding').length === 2, 'both handlers holding', 20000);
    release();
    assert.equal(await pending, 1);
  });

  test('close() while a broadcast waits: it resolves with the workers that acked', TEST, async (t) => {
    const { pool, log } = open(t, { maxWorkers: 2, minWorkers: 2 });
    await warm(pool, 2);
    const { file } = gate(t);
    const pending = pool.broadcast({ hold: file });
    await waitFor(() => eventPids(log, 'holding').length === 2, 'both handlers holding', 20000);
    const closed = pool.close();
    assert.equal(await pending, 0, 'workers being stopped are not live any more');
    await closed;
    await rejectsWith(pool.broadcast('late'), 'ERR_POOL_CLOSED');
  });

  test('a handler that throws or rejects: ERR_BROADCAST_FAILED naming the workers, the rest reached', TEST, async (t) => {
    const { pool } = open(t, { maxWorkers: 2, minWorkers: 2 });
    const pids = await warm(pool, 2);
    const err = await rejectsWith(pool.broadcast({ fail: 'bad config ✗' }), 'ERR_BROADCAST_FAILED');
    assert.ok(err instanceof PoolError);
    assert.equal(err.reached, 2, 'a worker whose handler threw still counts as reached');
    assert.deepEqual(err.failures.map((f) => f.pid).sort((a, b) => a - b), pids);
    for (const f of err.failures) {
      assert.ok(f.error instanceof RangeError);
      assert.equal(f.error.message, 'bad config ✗');
      assert.equal(f.error.code, 'E_HANDLER');
    }
    assert.match(err.message, /failed in 2 of the 2 workers reached/);
    assert.match(err.message, /bad config ✗/);
    const rej = await rejectsWith(pool.broadcast({ reject: 'async no' }), 'ERR_BROADCAST_FAILED');
    assert.equal(rej.failures[0].error.message, 'async no');
    // The workers go on; so does broadcasting.
    assert.equal(await pool.broadcast('fine'), 2);
    assert.equal((await pool.call('seen')).length, 3);
  });

  test('a handler removed by its off() function runs no more', TEST, async (t) => {
    const { pool, log } = open(t, { maxWorkers: 1, minWorkers: 1 });
    await warm(pool, 1);
    assert.equal(await pool.broadcast({ off: true }), 1);
    assert.equal(await pool.broadcast({ off: true }), 1);
    assert.equal(entries(log, 'event').filter((e) => e[1] === 'off').length, 1);
  });

  test('refused messages: closed pool, not JSON, binary, over maxMessage', TEST, async (t) => {
    const { pool } = open(t, { maxWorkers: 1, maxMessage: 1024 });
    const circular = {};
    circular.self = circular;
    for (const m of [() => 1, Symbol('s'), 10n, circular, Buffer.from('x'), { a: new Uint8Array(2) }]) {
      const err = await rejectsWith(pool.broadcast(m), 'ERR_UNSERIALIZABLE');
      assert.ok(err instanceof PoolError);
      assert.match(err.message, /broadcast message cannot be serialized/);
    }
    const big = await rejectsWith(pool.broadcast('x'.repeat(2000)), 'ERR_MESSAGE_TOO_LARGE');
    assert.equal(big.maxMessage, 1024);
    assert.match(big.message, /2002 bytes as JSON, more than maxMessage \(1024\)/);
    await pool.terminate();
    await rejectsWith(pool.broadcast('x'), 'ERR_POOL_CLOSED');
  });

  test('keeps Node alive until it settles; workers still starting get it after init', TEST, async () => {
    // minWorkers start with the pool: the broadcast is written to them before they are ready,
    // and it is the only thing this script waits for.
    const script = `
      const { Pool } = require(${JSON.stringify(path.join(repoRoot, 'index.js'))});
      const pool = new Pool({ module: ${JSON.stringify(fixture('broadcast.js'))}, minWorkers: 2, maxWorkers: 2 });
      pool.broadcast('hi').then(async (n) => {
        console.log('reached', n);
        await pool.close();
      });`;
    const out = execFileSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 20000 });
    assert.equal(out.trim(), 'reached 2');
  });
});

/** Whether a source of the example (or of its crate) changed after the binary was built. */
function newerSources(builtMs) {
  const crate = path.join(repoRoot, 'crates', 'worker');
  const files = [path.join(crate, 'Cargo.toml'), path.join(crate, 'examples', 'md5_worker.rs')];
  for (const f of readdirSync(path.join(crate, 'src'))) files.push(path.join(crate, 'src', f));
  return files.some((f) => existsSync(f) && statSync(f).mtimeMs > builtMs);
}

describe('pool.broadcast() with the Rust worker (md5_worker example)', () => {
  before(() => {
    if (!existsSync(md5Worker) || newerSources(statSync(md5Worker).mtimeMs)) {
      execFileSync('cargo', ['build', '-p', 'comrade-worker', '--examples'], {
        cwd: repoRoot,
        stdio: ['ignore', 'ignore', 'inherit'],
      });
    }
  }, { timeout: 15 * 60 * 1000 });

  test('every worker gets it (between calls), and a failing handler is reported', TEST, async (t) => {
    const { pool } = openPool(t, { command: [md5Worker], maxWorkers: 2, minWorkers: 2, concurrency: 2 });
    const pids = await warm(pool, 2);
    const calls = Array.from({ length: 20 }, (_, i) => pool.call('add', i, 1));
    assert.equal(await pool.broadcast({ v: [1, 'ü'] }), 2);
    assert.deepEqual(await Promise.all(calls), Array.from({ length: 20 }, (_, i) => i + 1));
    const seen = await Promise.all(Array.from({ length: 8 }, () => pool.call('messages')));
    for (const s of seen) assert.deepEqual(s, [{ v: [1, 'ü'] }]);
    const err = await rejectsWith(pool.broadcast({ fail: 'nope' }), 'ERR_BROADCAST_FAILED');
    assert.equal(err.reached, 2);
    assert.deepEqual(err.failures.map((f) => f.pid).sort((a, b) => a - b), pids);
    assert.equal(err.failures[0].error.code, 'E_MESSAGE');
    assert.equal(err.failures[0].error.message, 'nope');
  });
});

describe('pool.broadcast() with the Python worker (examples/python/worker.py)',
  { skip: !hasPython && 'python3 not found' }, () => {
    test('every worker gets it, and a raising handler is reported', TEST, async (t) => {
      const { pool } = openPool(t, {
        command: ['python3', pythonWorker], maxWorkers: 2, minWorkers: 2,
      });
      const pids = await warm(pool, 2);
      assert.equal(await pool.broadcast({ v: [1, 'ü'] }), 2);
      const seen = await Promise.all(Array.from({ length: 8 }, () => pool.call('messages')));
      for (const s of seen) assert.deepEqual(s, [{ v: [1, 'ü'] }]);
      const err = await errorOf(pool.broadcast({ fail: 'no good' }));
      assert.equal(err.code, 'ERR_BROADCAST_FAILED');
      assert.equal(err.reached, 2);
      assert.deepEqual(err.failures.map((f) => f.pid).sort((a, b) => a - b), pids);
      assert.equal(err.failures[0].error.name, 'ValueError');
      assert.equal(err.failures[0].error.code, 'E_MESSAGE');
    });
  });

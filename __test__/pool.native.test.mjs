// Workers that are not Node: the Rust example worker (crates/worker/examples/md5_worker.rs,
// built here if missing) and the Python example (examples/python/worker.py), both through
// new Pool({ command }). Round trips, errors, progress, events, retire, startup failure.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { before, describe, test } from 'node:test';
import { PoolError, TEST, entries, openPool, rejectsWith, repoRoot, waitFor } from './pool-helpers.mjs';

const md5Worker = path.join(repoRoot, 'target', 'debug', 'examples', 'md5_worker');
const pythonWorker = path.join(repoRoot, 'examples', 'python', 'worker.py');
const md5 = (s) => createHash('md5').update(s, 'utf8').digest('hex');

/** Whether a source of the example (or of its crate) changed after the binary was built. */
function newerSources(builtMs) {
  const crate = path.join(repoRoot, 'crates', 'worker');
  const files = [path.join(crate, 'Cargo.toml'), path.join(crate, 'examples', 'md5_worker.rs')];
  for (const f of readdirSync(path.join(crate, 'src'))) files.push(path.join(crate, 'src', f));
  return files.some((f) => existsSync(f) && statSync(f).mtimeMs > builtMs);
}

const hasPython = spawnSync('python3', ['--version']).status === 0;

describe('Rust worker (comrade-worker md5_worker example)', () => {
  before(() => {
    if (!existsSync(md5Worker) || newerSources(statSync(md5Worker).mtimeMs)) {
      execFileSync('cargo', ['build', '-p', 'comrade-worker', '--examples'], {
        cwd: repoRoot,
        stdio: ['ignore', 'ignore', 'inherit'],
      });
    }
    assert.ok(existsSync(md5Worker), `${md5Worker} was not built`);
  }, { timeout: 15 * 60 * 1000 });

  const open = (t, options = {}) => openPool(t, { command: [md5Worker], maxWorkers: 1, ...options });

  test('round trips: default echo, add, md5 checked against node:crypto', TEST, async (t) => {
    const { pool } = open(t, { maxWorkers: 2 });
    assert.deepEqual(await pool.run({ a: [1, 'ü', null], b: true }), { a: [1, 'ü', null], b: true });
    assert.equal(await pool.run('text'), 'text');
    assert.equal(await pool.run(null), null);
    assert.equal(await pool.call('add', 2, 3), 5);
    assert.equal(await pool.call('add', 0.5, -1.25), -0.75);
    const payloads = ['', 'hello', 'héllo wörld ✓ 🎉', 'x'.repeat(100000), 'line\nbreak "quoted" \\'];
    for (const p of payloads) {
      assert.deepEqual(await pool.call('md5', p), [p, md5(p)]);
    }
    // Many at once, over both workers.
    const many = Array.from({ length: 200 }, (_, i) => `payload-${i}`);
    const results = await Promise.all(many.map((p) => pool.call('md5', p)));
    assert.deepEqual(results, many.map((p) => [p, md5(p)]));
    assert.equal(typeof (await pool.call('pid')), 'number');
  });

  test('a returned error: RangeError with code and extra field', TEST, async (t) => {
    const { pool } = open(t);
    const pid = await pool.call('pid');
    const err = await rejectsWith(pool.call('fail', 'out of bounds ✗'), 'E_FAIL');
    assert.ok(err instanceof RangeError);
    assert.equal(err.name, 'RangeError');
    assert.equal(err.message, 'out of bounds ✗');
    assert.equal(err.detail, 42);
    assert.equal(await pool.call('pid'), pid, 'the worker goes on');
  });

  test('a panic answers ERR_PANIC with its message; the worker goes on serving', TEST, async (t) => {
    const { pool } = open(t);
    const pid = await pool.call('pid');
    const err = await rejectsWith(pool.call('panic', 'rust panicked here'), 'ERR_PANIC');
    assert.match(err.message, /rust panicked here/);
    await rejectsWith(pool.call('panic'), 'ERR_PANIC');
    assert.equal(await pool.call('pid'), pid);
    assert.equal(await pool.call('add', 1, 1), 2);
  });

  test('unknown function and arguments that do not fit', TEST, async (t) => {
    const { pool } = open(t);
    const unknown = await rejectsWith(pool.call('nope', 1), 'ERR_UNKNOWN_FUNCTION');
    assert.match(unknown.message, /nope/);
    const bad = await rejectsWith(pool.call('add', 'a', 'b'), 'ERR_INVALID_ARGS');
    assert.ok(bad instanceof TypeError);
    await rejectsWith(pool.call('add', 1), 'ERR_INVALID_ARGS');
    await rejectsWith(pool.call('md5', 5), 'ERR_INVALID_ARGS');
    assert.equal(await pool.call('add', 1, 2), 3);
  });

  test('progress reaches onProgress in order before the result', TEST, async (t) => {
    const { pool } = open(t);
    const seen = [];
    const r = await pool.run(5, { name: 'progress', onProgress: (v) => seen.push(v) })
      .then((v) => ({ v, seen: [...seen] }));
    assert.deepEqual(r, { v: 5, seen: [1, 2, 3, 4, 5] });
  });

  test("emit reaches the pool's 'event' listeners with the worker's pid", TEST, async (t) => {
    const { pool, log } = open(t);
    const pid = await pool.call('pid');
    assert.equal(await pool.call('emit', 'cache', { size: 12, keys: ['a'] }), null);
    assert.deepEqual(entries(log, 'event'), [['event', 'cache', { size: 12, keys: ['a'] }, pid]]);
  });

  test('retire: the worker is replaced, with workerRetire and an expected workerExit', TEST, async (t) => {
    const { pool, log } = open(t);
    const first = await pool.call('retire');
    const next = await pool.call('pid');
    assert.notEqual(next, first);
    assert.deepEqual(entries(log, 'workerRetire'), [['workerRetire', first]]);
    await waitFor(() => entries(log, 'workerExit').length === 1, 'the retired worker to exit');
    assert.equal(entries(log, 'workerExit')[0][1].pid, first);
    assert.equal(entries(log, 'workerExit')[0][1].expected, true);
  });

  test('a slow job runs while another worker serves the rest', TEST, async (t) => {
    const { pool } = open(t, { maxWorkers: 2 });
    const slow = pool.call('sleep_ms', 200);
    const quick = await Promise.all([1, 2, 3].map((i) => pool.call('add', i, i)));
    assert.deepEqual(quick, [2, 4, 6]);
    assert.equal(await slow, 200);
  });

  test('init failure (initData { fail }) rejects ERR_WORKER_INIT_FAILED with the cause', TEST, async (t) => {
    const { pool } = open(t, { initData: { fail: 'no config' } });
    const errs = await Promise.all([1, 2, 3].map(() => rejectsWith(pool.call('pid'), 'ERR_WORKER_INIT_FAILED')));
    for (const err of errs) {
      assert.ok(err instanceof PoolError);
      assert.equal(err.cause.message, 'no config');
      assert.equal(err.cause.code, 'E_INIT');
    }
  });

  test('a crash while holding a job: ERR_WORKER_EXITED, then a new worker', TEST, async (t) => {
    const { pool } = open(t);
    const pid = await pool.call('pid');
    const job = rejectsWith(pool.call('sleep_ms', 60000), 'ERR_WORKER_EXITED');
    // The worker is ready and idle: the job is handed to it as soon as it is submitted
    // (at the end of this tick).
    await new Promise((resolve) => setImmediate(resolve));
    process.kill(pid, 'SIGKILL');
    const err = await job;
    assert.equal(err.signal, 'SIGKILL');
    assert.equal(err.pid, pid);
    assert.notEqual(await pool.call('pid'), pid);
  });

  test('close() drains and stops the worker', TEST, async (t) => {
    const { pool } = open(t);
    const jobs = [pool.call('sleep_ms', 20), pool.call('add', 1, 2), pool.run('last')];
    const closed = pool.close();
    assert.deepEqual(await Promise.all(jobs), [20, 3, 'last']);
    await closed;
    assert.deepEqual(pool.pids, []);
  });
});

describe('Python worker (examples/python/worker.py)', { skip: !hasPython && 'python3 not found' }, () => {
  const open = (t, options = {}) => openPool(t, { command: ['python3', pythonWorker], maxWorkers: 1, ...options });

  test('round trips: default echo, add, upper', TEST, async (t) => {
    const { pool } = open(t, { maxWorkers: 2 });
    assert.deepEqual(await pool.run({ a: [1, 'ü', null], b: 1.5 }), { a: [1, 'ü', null], b: 1.5 });
    assert.equal(await pool.run(null), null);
    assert.equal(await pool.call('add', 2, 3), 5);
    assert.equal(await pool.call('add', 'con', 'cat'), 'concat');
    assert.deepEqual(await pool.call('add', [1], [2]), [1, 2]);
    assert.equal(await pool.call('upper', 'héllo wörld ß'), 'HÉLLO WÖRLD SS');
    const many = await Promise.all(Array.from({ length: 100 }, (_, i) => pool.call('add', i, 1)));
    assert.deepEqual(many, Array.from({ length: 100 }, (_, i) => i + 1));
  });

  test("the script path relative to the pool's cwd (the repo root)", TEST, async (t) => {
    const { pool } = openPool(t, {
      command: ['python3', 'examples/python/worker.py'], cwd: repoRoot, maxWorkers: 1,
    });
    assert.equal(await pool.call('upper', 'ok'), 'OK');
  });

  test('a raised exception: name, message, code and the Python traceback', TEST, async (t) => {
    const { pool } = open(t);
    const pid = await pool.call('pid');
    const err = await rejectsWith(pool.call('fail', 'bad value ✗'), 'E_PY');
    assert.ok(err instanceof Error);
    assert.equal(err.name, 'ValueError');
    assert.equal(err.message, 'bad value ✗');
    assert.match(err.stack, /^ValueError: bad value ✗/);
    assert.match(err.stack, /worker\.py/);
    assert.match(err.stack, /in fail/);
    // A Python TypeError is a JS TypeError.
    const te = await errorOfType(pool.call('add', 1, 'x'), TypeError);
    assert.match(te.message, /unsupported operand|can only concatenate|must be/);
    assert.equal(await pool.call('pid'), pid, 'the worker goes on');
  });

  test('unknown function and arguments that do not fit', TEST, async (t) => {
    const { pool } = open(t);
    await rejectsWith(pool.call('nope'), 'ERR_UNKNOWN_FUNCTION');
    const bad = await rejectsWith(pool.call('add', 1), 'ERR_INVALID_ARGS');
    assert.ok(bad instanceof TypeError);
    await rejectsWith(pool.call('upper', 'a', 'b'), 'ERR_INVALID_ARGS');
    assert.equal(await pool.call('add', 1, 1), 2);
  });

  test("emit reaches the pool's 'event' listeners", TEST, async (t) => {
    const { pool, log } = open(t);
    const pid = await pool.call('pid');
    assert.equal(await pool.call('emit', 'py-event', { n: [1, 2] }), null);
    await pool.call('emit', 'no-data');
    assert.deepEqual(entries(log, 'event'), [
      ['event', 'py-event', { n: [1, 2] }, pid],
      ['event', 'no-data', null, pid],
    ]);
  });

  test('pid, crash and replacement, close', TEST, async (t) => {
    const { pool } = open(t);
    const pid = await pool.call('pid');
    assert.notEqual(pid, process.pid);
    process.kill(pid, 'SIGKILL');
    let next;
    do {
      next = await pool.call('pid').catch((e) => (e.code === 'ERR_WORKER_EXITED' ? null : Promise.reject(e)));
    } while (next === null);
    assert.notEqual(next, pid);
    await pool.close();
    assert.deepEqual(pool.pids, []);
  });
});

async function errorOfType(promise, Ctor) {
  const err = await promise.then(() => null, (e) => e);
  assert.ok(err instanceof Ctor, `expected a ${Ctor.name}, got ${err}`);
  return err;
}

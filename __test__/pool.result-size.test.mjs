// A result over maxMessage fails its own job (ERR_MESSAGE_TOO_LARGE, raised in the worker before
// anything is sent); the worker and the other jobs it holds go on (issue 14, point 7). The
// engine still treats an oversized line from a worker that ignores the limit as a protocol error.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import test from 'node:test';
import { PoolError, TEST, entries, fixture, openPool, rejectsWith, repoRoot } from './pool-helpers.mjs';

const sizes = fixture('result-size.js');
const MAX = 4096;

test('a result over maxMessage fails its job; the other job on the same worker succeeds', TEST, async (t) => {
  const { pool, log } = openPool(t, { module: sizes, maxWorkers: 1, concurrency: 2, maxMessage: MAX });
  const pid = await pool.call('pid');
  // Both on the one worker at once: held() answers only after big() has been answered.
  const held = pool.call('held');
  const big = pool.call('big', MAX);
  const [h, b] = await Promise.allSettled([held, big]);
  assert.equal(b.status, 'rejected');
  assert.equal(b.reason.code, 'ERR_MESSAGE_TOO_LARGE');
  assert.ok(b.reason instanceof PoolError, 'a PoolError, as for arguments over maxMessage');
  assert.equal(b.reason.maxMessage, MAX);
  assert.ok(b.reason.bytes > MAX, `bytes: ${b.reason.bytes}`);
  assert.match(b.reason.message, /the function's result is \d+ bytes .* more than maxMessage \(4096\)/);
  assert.deepEqual(h, { status: 'fulfilled', value: pid });
  // The same worker goes on; nothing was a protocol error, no worker exited.
  assert.equal(await pool.call('pid'), pid);
  assert.deepEqual(entries(log, 'protocolError'), []);
  assert.deepEqual(entries(log, 'workerExit'), []);
  assert.deepEqual(entries(log, 'workerSpawn'), [['workerSpawn', pid]]);
  const st = pool.stats();
  assert.equal(st.completed + st.errored, 4);
});

test('the limit is in UTF-8 bytes, the line included: the largest result that fits is taken', TEST, async (t) => {
  const { pool, log } = openPool(t, { module: sizes, maxWorkers: 1, maxMessage: MAX });
  assert.equal(await pool.call('big', MAX - 100, 'x'), 'x'.repeat(MAX - 100));
  // 1500 € signs are 4500 bytes: over, though 1500 characters.
  await rejectsWith(pool.call('big', 1500, '€'), 'ERR_MESSAGE_TOO_LARGE');
  await rejectsWith(pool.call('big', MAX, 'x'), 'ERR_MESSAGE_TOO_LARGE');
  // Around the boundary: every size up to the largest that fits is taken (by the engine too: no
  // protocol error), every larger one fails its job. {"t":"ok","id":N,"v":"…"} is 23 bytes plus
  // the id's digits around the characters.
  const fitting = [];
  for (let n = MAX - 40; n <= MAX; n++) {
    fitting.push(await pool.call('big', n, 'x').then(() => true, (e) => {
      assert.equal(e.code, 'ERR_MESSAGE_TOO_LARGE');
      return false;
    }));
  }
  const largest = MAX - 40 + fitting.lastIndexOf(true);
  assert.deepEqual(fitting, fitting.map((_, i) => MAX - 40 + i <= largest));
  assert.ok(largest >= MAX - 23 - 10 && largest <= MAX - 23 - 1, `the largest fitting result: ${largest}`);
  assert.deepEqual(entries(log, 'protocolError'), []);
  assert.deepEqual(entries(log, 'workerExit'), []);
});

test('an error, a progress value or an event over maxMessage fails in the worker, not the protocol', TEST, async (t) => {
  const { pool, log } = openPool(t, { module: sizes, maxWorkers: 1, maxMessage: MAX });
  const pid = await pool.call('pid');
  // A thrown error too large to send: an ERR_MESSAGE_TOO_LARGE error with its message's start.
  const err = await rejectsWith(pool.call('throwBig', MAX), 'ERR_MESSAGE_TOO_LARGE');
  assert.match(err.message, /the function's error is \d+ bytes .*: huge: mmm/);
  // A small enough error still travels whole.
  const small = await rejectsWith(pool.call('throwBig', 10), 'E_HUGE');
  assert.equal(small.message, `huge: ${'m'.repeat(10)}`);
  // progress() and emit() throw in the job; the job may go on.
  const seen = [];
  const p = await pool.run(MAX, { name: 'progressBig', onProgress: (v) => seen.push(v) });
  assert.equal(p.code, 'ERR_MESSAGE_TOO_LARGE');
  assert.equal(p.maxMessage, MAX);
  assert.deepEqual(seen, ['small']);
  const e = await pool.call('emitBig', MAX);
  assert.equal(e.code, 'ERR_MESSAGE_TOO_LARGE');
  assert.deepEqual(entries(log, 'event').map((x) => x[1]), ['small']);
  assert.equal(await pool.call('pid'), pid);
  assert.deepEqual(entries(log, 'protocolError'), []);
  assert.deepEqual(entries(log, 'workerExit'), []);
});

test('a worker that ignores maxMessage still breaks the protocol with an oversized line', TEST, async (t) => {
  // hostile-native.js answers a call with the error text it was given, whatever its length: the
  // arguments fit (4092 bytes), the reply line (4107 bytes) does not.
  const hostile = [process.execPath, fixture('hostile-native.js')];
  const { pool, log } = openPool(t, { command: hostile, maxWorkers: 1, maxMessage: MAX });
  const text = JSON.stringify({ message: 'x'.repeat(4070) });
  const err = await rejectsWith(pool.call('any', text), 'ERR_WORKER_EXITED');
  assert.match(err.message, /protocol/);
  assert.equal(entries(log, 'protocolError').length, 1);
});

// The Rust crate and the Python example take the pool's maxMessage from COMRADE_MAX_MESSAGE: an
// echo of arguments that fit (MAX - 6 bytes as JSON) is a reply that does not.
const md5Worker = path.join(repoRoot, 'target', 'debug', 'examples', 'md5_worker');
const pythonWorker = path.join(repoRoot, 'examples', 'python', 'worker.py');
/** Whether a source of the crate changed after the example was built (as pool.native.test.mjs). */
function newerSources(builtMs) {
  const crate = path.join(repoRoot, 'crates', 'worker');
  const files = [path.join(crate, 'Cargo.toml'), path.join(crate, 'examples', 'md5_worker.rs')];
  for (const f of readdirSync(path.join(crate, 'src'))) files.push(path.join(crate, 'src', f));
  return files.some((f) => existsSync(f) && statSync(f).mtimeMs > builtMs);
}
const hasPython = spawnSync('python3', ['--version']).status === 0;
const NATIVE = [
  { label: 'Rust (comrade-worker)', command: () => [md5Worker], skip: false },
  { label: 'Python example', command: () => ['python3', pythonWorker], skip: !hasPython && 'no python3' },
];
for (const { label, command, skip } of NATIVE) {
  test(`${label}: an echo over maxMessage fails its own job, the worker goes on`, { ...TEST, timeout: 15 * 60 * 1000, skip }, async (t) => {
    if (label.startsWith('Rust') && (!existsSync(md5Worker) || newerSources(statSync(md5Worker).mtimeMs))) {
      execFileSync('cargo', ['build', '-p', 'comrade-worker', '--examples'], {
        cwd: repoRoot, stdio: ['ignore', 'ignore', 'inherit'],
      });
    }
    const { pool, log } = openPool(t, { command: command(), maxWorkers: 1, concurrency: 2, maxMessage: MAX });
    const pid = await pool.call('pid');
    const [big, small] = await Promise.allSettled([pool.run('x'.repeat(MAX - 10)), pool.run('small')]);
    assert.equal(big.status, 'rejected');
    assert.equal(big.reason.code, 'ERR_MESSAGE_TOO_LARGE');
    assert.ok(big.reason instanceof PoolError);
    assert.equal(big.reason.maxMessage, MAX);
    assert.ok(big.reason.bytes > MAX);
    assert.deepEqual(small, { status: 'fulfilled', value: 'small' });
    assert.equal(await pool.run('x'.repeat(MAX - 40)), 'x'.repeat(MAX - 40));
    assert.equal(await pool.call('pid'), pid);
    assert.deepEqual(entries(log, 'protocolError'), []);
    assert.deepEqual(entries(log, 'workerExit'), []);
  });
}

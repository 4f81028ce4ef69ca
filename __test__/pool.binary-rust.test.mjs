// Issue 11, item 1: binary payloads with the Rust worker crate (protocol version 3). The
// fixture is crates/worker/examples/bytes_worker.rs (built here if missing or stale): bytes
// arrive as serde bytes (serde_bytes::ByteBuf, Vec<u8> through serde_bytes) and results that
// serialize bytes come back as Buffers, at any depth and size; a worker that declares more
// attachment bytes than it sends is a protocol error (or a crash), never an unbounded wait.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { before, describe, test } from 'node:test';
import { codes, entries, openPool, rejectsWith, repoRoot, TEST, waitFor } from './pool-helpers.mjs';

const worker = path.join(repoRoot, 'target', 'debug', 'examples', 'bytes_worker');

/** Whether a source of the example (or of the crates it uses) changed after it was built. */
function stale(builtMs) {
  const files = [];
  for (const crate of ['worker', 'protocol']) {
    const dir = path.join(repoRoot, 'crates', crate);
    files.push(path.join(dir, 'Cargo.toml'));
    for (const f of readdirSync(path.join(dir, 'src'))) files.push(path.join(dir, 'src', f));
  }
  files.push(path.join(repoRoot, 'crates', 'worker', 'examples', 'bytes_worker.rs'));
  return files.some((f) => existsSync(f) && statSync(f).mtimeMs > builtMs);
}

const bytes = (n, seed = 0) => {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + seed) & 0xff;
  return b;
};
const sum = (b) => b.reduce((a, x) => a + x, 0);

describe('Rust worker with binary data (comrade-worker bytes_worker example)', () => {
  before(() => {
    if (!existsSync(worker) || stale(statSync(worker).mtimeMs)) {
      execFileSync('cargo', ['build', '-p', 'comrade-worker', '--examples'], {
        cwd: repoRoot,
        stdio: ['ignore', 'ignore', 'inherit'],
      });
    }
    assert.ok(existsSync(worker), `${worker} was not built`);
  }, { timeout: 15 * 60 * 1000 });

  const open = (t, options = {}) => openPool(t, { command: [worker], maxWorkers: 1, ...options });

  test('bytes round trip at every depth and size, many in flight', TEST, async (t) => {
    const { pool } = open(t, { maxWorkers: 2 });
    const sizes = [0, 1, 7, 4096, 65535, 65536, 65537, 300000, 1 << 20];
    const sent = sizes.map((n, i) => bytes(n, i));
    const back = await Promise.all(sent.map((b) => pool.run(b)));
    back.forEach((b, i) => {
      assert.ok(Buffer.isBuffer(b), `size ${sizes[i]}`);
      assert.ok(b.equals(sent[i]), `size ${sizes[i]}`);
    });
    // Nested in objects and arrays, beside plain values, views of any kind.
    const u16 = new Uint16Array([1, 256, 65535]);
    const deep = {
      a: [sent[3], { b: [sent[0], { c: sent[8] }] }],
      u16,
      ab: new Uint8Array([5, 6]).buffer,
      n: 1.5,
      s: 'text',
      none: null,
      yes: true,
    };
    const r = await pool.run(deep);
    assert.ok(r.a[0].equals(sent[3]));
    assert.ok(r.a[1].b[0].equals(sent[0]) && r.a[1].b[0].length === 0);
    assert.ok(r.a[1].b[1].c.equals(sent[8]));
    assert.ok(r.u16.equals(Buffer.from(u16.buffer)));
    assert.deepEqual([...r.ab], [5, 6]);
    assert.deepEqual([r.n, r.s, r.none, r.yes], [1.5, 'text', null, true]);
    // Typed arguments: ByteBuf, and a struct whose Vec<u8> goes through serde_bytes.
    assert.deepEqual(await pool.call('digest', sent[5]), { len: 65536, sum: sum(sent[5]) });
    const p = await pool.call('packet', { name: 'p', body: Buffer.from('abc'), chunks: [sent[1], sent[0]] });
    assert.equal(p.name, 'P');
    assert.equal(p.body.toString(), 'cba');
    assert.ok(p.chunks[0].equals(sent[1]) && p.chunks[1].length === 0);
    const [made, empty] = await pool.call('make', 70000, 9);
    assert.ok(Buffer.isBuffer(made) && made.length === 70000 && made.every((x) => x === 9));
    assert.ok(Buffer.isBuffer(empty) && empty.length === 0);
    // Jobs without binaries in between are untouched.
    assert.deepEqual(await pool.run({ plain: [1, 'two'] }), { plain: [1, 'two'] });
  });

  // Longer than TEST: the fixture is a debug build, and the machine may be busy.
  test('a 64 MiB Buffer makes the round trip', { timeout: 120000 }, async (t) => {
    const { pool } = open(t, { maxMessage: 65 << 20 });
    const big = Buffer.alloc(64 << 20, 3);
    big[12345] = 9;
    const back = await pool.run(big);
    assert.ok(back.equals(big));
    assert.deepEqual(await pool.call('packet', { name: 'n', body: big.subarray(12340, 12350), chunks: [big] }).then(
      (p) => [p.body.length, p.body[4], p.chunks[0].length]), [10, 9, 64 << 20]);
    const [made] = await pool.call('make', 64 << 20, 7);
    assert.equal(made.length, 64 << 20);
    assert.equal(made[0], 7);
    assert.equal(made[(64 << 20) - 1], 7);
  });

  test('bytes that do not fit are clear errors and the worker serves on', TEST, async (t) => {
    const { pool } = open(t, { maxMessage: 1000 });
    const pid = await pool.call('pid');
    const big = await rejectsWith(pool.call('make', 1001, 0), codes.MESSAGE_TOO_LARGE);
    assert.match(big.message, /binary data that is 1001 bytes/);
    const wrong = await rejectsWith(pool.call('digest', 5), 'ERR_INVALID_ARGS');
    assert.match(wrong.message, /invalid arguments for "digest"/);
    const [ok] = await pool.call('make', 1000, 1);
    assert.equal(ok.length, 1000);
    assert.equal(await pool.call('pid'), pid);
  });

  for (const [mode, args, reason] of [
    ['fewer bytes than declared, then more messages', [10, 3, false], /attachments not followed by a newline/],
    ['more bytes than maxMessage declared', [2 ** 40, 0, false], /attachments of 1099511627776 bytes, more than the limit/],
  ]) {
    test(`a worker that declares ${mode} is a protocol error`, TEST, async (t) => {
      const rss = process.memoryUsage().rss;
      const { pool, log } = open(t);
      await rejectsWith(pool.call('lie', ...args), codes.WORKER_EXITED);
      await waitFor(() => entries(log, 'workerExit').length === 1, 'the exit');
      const pe = entries(log, 'protocolError');
      assert.equal(pe.length, 1);
      assert.match(pe[0][1].message, reason);
      // Nothing was allocated for the declared length.
      assert.ok(process.memoryUsage().rss - rss < 256 << 20);
      // A new worker serves the next job.
      assert.ok((await pool.run(Buffer.from([1]))).equals(Buffer.from([1])));
    });
  }

  test('a worker that sends fewer bytes than it declared and exits fails its job', TEST, async (t) => {
    const { pool, log } = open(t, { retries: 0 });
    await rejectsWith(pool.call('lie', 1 << 20, 10, true), codes.WORKER_EXITED);
    await waitFor(() => entries(log, 'workerExit').length === 1, 'the exit');
    assert.ok((await pool.run(Buffer.from([2]))).equals(Buffer.from([2])));
  });
});

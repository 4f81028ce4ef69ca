// Issue 11, item 1: binary payloads. An ArrayBuffer or any view of one, anywhere in a job's
// arguments or result, travels as raw bytes (docs/PROTOCOL.md, "Binary attachments") and
// arrives as a Buffer; bad binaries get clear errors; a worker that breaks the framing is a
// protocol error; a worker of protocol version 2 keeps working without binaries.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import test from 'node:test';
import {
  codes, entries, fixture, openPool, rejectsWith, TEST, waitFor,
} from './pool-helpers.mjs';

const bytes = (n, seed = 0) => {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + seed) & 0xff;
  return b;
};
const sum = (b) => b.reduce((a, x) => a + x, 0);

test('binaries at every depth arrive in the worker as Buffers of the same bytes', TEST, async (t) => {
  const { pool } = openPool(t, { module: fixture('binary.js'), maxWorkers: 1 });
  const b = bytes(1000);
  const u8 = new Uint8Array([1, 2, 3]);
  const ab = new Uint8Array([4, 5]).buffer;
  const f64 = new Float64Array([1.5]);
  const dv = new DataView(new Uint8Array([9, 9, 9, 9]).buffer, 1, 2);
  const sub = b.subarray(10, 20);
  const got = await pool.call('describe', b, { x: [u8, { y: ab }], f64, dv, sub, n: 1, s: 'a' }, Buffer.alloc(0));
  assert.deepEqual(got, [
    `Buffer:1000:${sum(b)}`,
    {
      x: ['Buffer:3:6', { y: 'Buffer:2:9' }],
      f64: `Buffer:8:${sum(Buffer.from(f64.buffer))}`,
      dv: 'Buffer:2:18',
      sub: `Buffer:10:${sum(sub)}`,
      n: 1,
      s: 'a',
    },
    'Buffer:0:0',
  ]);
  // A single argument that is a binary, through run().
  assert.deepEqual(await pool.run(b, { name: 'describe' }), [`Buffer:1000:${sum(b)}`]);
});

test('results holding binaries come back as Buffers, nested, empty and many', TEST, async (t) => {
  const { pool } = openPool(t, { module: fixture('binary.js'), maxWorkers: 2 });
  const r = await pool.call('make', 100, 3);
  assert.equal(r.list.length, 100);
  r.list.forEach((b, i) => {
    assert.ok(Buffer.isBuffer(b));
    assert.deepEqual([...b], [i, i, i]);
  });
  assert.ok(Buffer.isBuffer(r.deep.a[0].b));
  assert.deepEqual([...r.deep.a[0].b], [1, 2, 3]);
  assert.deepEqual([...r.deep.ab], [...Buffer.from(new Uint16Array([1, 256]).buffer)]);
  assert.ok(Buffer.isBuffer(r.empty));
  assert.equal(r.empty.length, 0);
  assert.equal(r.text, 'plain');
  // Echo both ways at several sizes, many in flight on both workers, in order of their ids.
  const sizes = [0, 1, 7, 4096, 65535, 65536, 65537, 1 << 20];
  const sent = sizes.map((n, i) => bytes(n, i));
  const back = await Promise.all(sent.map((b) => pool.call('echo', b)));
  back.forEach((b, i) => {
    assert.ok(Buffer.isBuffer(b));
    assert.ok(b.equals(sent[i]), `size ${sizes[i]}`);
  });
  const nested = await pool.call('echo', { a: [sent[4], { b: sent[2] }], c: 'x' });
  assert.ok(nested.a[0].equals(sent[4]) && nested.a[1].b.equals(sent[2]) && nested.c === 'x');
  // Jobs without binaries between them are untouched.
  assert.deepEqual(await pool.call('echo', { plain: [1, 'two'] }), { plain: [1, 'two'] });
});

// The worker reads a call with attachments by its line's first bytes only: here text calls
// (characters of 2, 3 and 4 bytes in UTF-8 among them) and calls with binaries are written to
// it in one batch, in one read, so the switch from text lines to bytes and back happens inside
// a read, after lines whose text offsets are not their byte offsets.
test('calls with and without binaries mixed in one read each get their own reply', TEST, async (t) => {
  const { pool } = openPool(t, { module: fixture('binary.js'), maxWorkers: 1, concurrency: 64 });
  assert.equal(await pool.call('echo', 'ready'), 'ready');
  const sent = [];
  for (let i = 0; i < 12; i++) {
    sent.push(`é ☃ 😀 ${i}`, { b: bytes(i * 100 + 1, i), s: `ü${i}`, n: [i, { '{"b":[': i }] },
      `{"b":[${i}]}`, { b: [i, 'x'] }, i % 3 === 0 ? bytes(3, i) : ['😀', i]);
  }
  const back = await Promise.all(sent.map((v) => pool.call('echo', v)));
  // Buffers sent come back as Buffers (strict deepEqual compares their bytes and type).
  assert.deepEqual(back, sent);
});

// Values nested deeper than the walk for binaries keeps no list of objects (32 levels), and
// cycles, which end that walk only with the list.
test('binaries nested 40 levels deep travel both ways; a cycle fails as JSON', TEST, async (t) => {
  const { pool } = openPool(t, { module: fixture('binary.js'), maxWorkers: 1 });
  let deep = { b: bytes(5, 1) };
  for (let i = 0; i < 40; i++) deep = i % 2 ? { d: deep } : [deep];
  let back = await pool.call('echo', deep);
  for (let i = 39; i >= 0; i--) back = i % 2 ? back.d : back[0];
  assert.ok(Buffer.isBuffer(back.b) && back.b.equals(bytes(5, 1)));
  const res = await rejectsWith(pool.call('cyclic'), codes.UNSERIALIZABLE_RESULT);
  assert.match(res.message, /circular/i);
  const cyclic = { a: [1] };
  cyclic.a.push({ up: cyclic });
  const arg = await rejectsWith(pool.call('echo', cyclic), codes.UNSERIALIZABLE);
  assert.match(arg.message, /circular/i);
  // The worker serves on.
  assert.deepEqual([...await pool.call('echo', Buffer.from([1, 2]))], [1, 2]);
});

// Arguments of 64 KiB or more are written from the job's own frame (writev), not copied into
// the channel's output buffer: many in flight, between small jobs, each arrives whole and in
// its place, and the frame is still there for a retry.
test('large binaries written beside small jobs arrive whole, in order, and again on a retry', TEST, async (t) => {
  const { pool } = openPool(t, { module: fixture('binary.js'), maxWorkers: 1, concurrency: 32 });
  const sizes = [0, 1, 65535, 65536, 65537, 1 << 20, 3 << 20];
  const sent = [];
  for (let round = 0; round < 3; round++) {
    for (const [i, n] of sizes.entries()) sent.push(bytes(n, round * 10 + i), `small ${round} ${i}`);
    sent.push({ two: [bytes(70000, round), bytes(1, round)], text: 'x' });
  }
  const back = await Promise.all(sent.map((v) => pool.call('echo', v)));
  assert.deepEqual(back, sent);
  const marker = path.join(mkdtempSync(path.join(tmpdir(), 'comrade-bin-')), 'crashed');
  t.after(() => rmSync(path.dirname(marker), { recursive: true, force: true }));
  const big = bytes(2 << 20, 5);
  const again = await pool.exec('crashOnce', [marker, big], { retries: 1 });
  assert.ok(again.equals(big));
  assert.equal(pool.stats().retried, 1);
});

// Node workers get glibc malloc settings that keep binary-sized blocks (lib/pool.js); they are
// the worker process's own, not shown to its code, and a value the user gives is kept.
test('the malloc settings of Node workers stay out of their code, and yield to the user', TEST, async (t) => {
  const { pool } = openPool(t, { module: fixture('binary.js'), maxWorkers: 1 });
  assert.equal(await pool.call('env', 'MALLOC_MMAP_THRESHOLD_'), null);
  assert.equal(await pool.call('env', 'MALLOC_TRIM_THRESHOLD_'), null);
  const { pool: own } = openPool(t, {
    module: fixture('binary.js'), maxWorkers: 1, env: { MALLOC_TRIM_THRESHOLD_: '1048576' },
  });
  assert.equal(await own.call('env', 'MALLOC_TRIM_THRESHOLD_'), '1048576');
  assert.equal(await own.call('env', 'MALLOC_MMAP_THRESHOLD_'), null);
});

test('a 64 MiB Buffer makes the round trip', TEST, async (t) => {
  const { pool } = openPool(t, { module: fixture('binary.js'), maxWorkers: 1, maxMessage: 65 << 20 });
  const big = Buffer.alloc(64 << 20, 3);
  big[12345] = 9;
  const back = await pool.call('echo', big);
  assert.ok(back.equals(big));
  const made = await pool.call('big', 64 << 20);
  assert.equal(made.length, 64 << 20);
  assert.equal(made[0], 7);
  assert.equal(made[(64 << 20) - 1], 7);
});

test('binaries over maxMessage, shared memory and detached buffers are refused clearly', TEST, async (t) => {
  const { pool } = openPool(t, { module: fixture('binary.js'), maxWorkers: 1, maxMessage: 1000 });
  const big = await rejectsWith(pool.call('echo', { a: Buffer.alloc(600), b: Buffer.alloc(600) }),
    codes.MESSAGE_TOO_LARGE);
  assert.match(big.message, /binary arguments are 1200 bytes, more than maxMessage \(1000\)/);
  const shared = await rejectsWith(pool.call('echo', new Uint8Array(new SharedArrayBuffer(4))),
    codes.UNSERIALIZABLE);
  assert.match(shared.message, /SharedArrayBuffer cannot be sent/);
  const ab = new ArrayBuffer(8);
  structuredClone(ab, { transfer: [ab] });
  const detached = await rejectsWith(pool.call('echo', [ab]), codes.UNSERIALIZABLE);
  assert.match(detached.message, /detached ArrayBuffer/);
  // A result over maxMessage fails its own job; the worker serves on.
  const res = await rejectsWith(pool.call('big', 2000), codes.MESSAGE_TOO_LARGE);
  assert.match(res.message, /2000 bytes of binaries, more than maxMessage \(1000\)/);
  assert.deepEqual([...await pool.call('echo', Buffer.from([1, 2]))], [1, 2]);
});

for (const [mode, reason] of [
  ['mismatch', /attachments not followed by a newline/],
  ['huge', /attachments of 1099511627776 bytes, more than the limit/],
  ['progress', /attachments on a "progress" message/],
]) {
  test(`a worker that breaks the attachment framing (${mode}) is a protocol error`, TEST, async (t) => {
    const { pool, log } = openPool(t, {
      command: [process.execPath, fixture('bin-hostile.js'), mode], maxWorkers: 1,
    });
    await rejectsWith(pool.run(1), codes.WORKER_EXITED);
    await waitFor(() => entries(log, 'workerExit').length === 1, 'the exit');
    const pe = entries(log, 'protocolError');
    assert.equal(pe.length, 1);
    assert.match(pe[0][1].message, reason);
  });
}

test('a worker that sends fewer attachment bytes than it declared and exits fails its job', TEST, async (t) => {
  const { pool, log } = openPool(t, {
    command: [process.execPath, fixture('bin-hostile.js'), 'short'], maxWorkers: 1,
  });
  await rejectsWith(pool.run(1), codes.WORKER_EXITED);
  await waitFor(() => entries(log, 'workerExit').length === 1, 'the exit');
});

test('a worker of protocol version 2 keeps working while no binary is sent', TEST, async (t) => {
  const { pool, log } = openPool(t, {
    command: [process.execPath, fixture('v2-worker.js')], maxWorkers: 1,
  });
  const got = await Promise.all([1, 'two', { three: [3] }].map((v) => pool.run(v)));
  assert.deepEqual(got, [{ v2: 1 }, { v2: 'two' }, { v2: { three: [3] } }]);
  assert.equal(entries(log, 'workerExit').length, 0);
});

test('the Python example takes binaries as bytes and returns bytes as Buffers', TEST, async (t) => {
  const { pool } = openPool(t, {
    command: ['python3', new URL('../examples/python/worker.py', import.meta.url).pathname], maxWorkers: 1,
  });
  const r = await pool.call('reverse_bytes', Buffer.from([1, 2, 3]));
  assert.equal(r.type, 'bytes');
  assert.ok(Buffer.isBuffer(r.reversed) && Buffer.isBuffer(r.empty));
  assert.deepEqual([...r.reversed], [3, 2, 1]);
  assert.equal(r.empty.length, 0);
  // Nested both ways, many attachments, sizes across the worker's reads (256 KiB).
  const list = [0, 1, 1000, 300000, 1 << 20].map((n, i) => bytes(n, i));
  const back = await pool.run({ list, deep: [{ x: list[2] }], s: 'text' });
  back.list.forEach((b, i) => assert.ok(Buffer.isBuffer(b) && b.equals(list[i]), `attachment ${i}`));
  assert.ok(back.deep[0].x.equals(list[2]));
  assert.equal(back.s, 'text');
  assert.equal(await pool.call('add', 2, 3), 5, 'plain calls between them');
});

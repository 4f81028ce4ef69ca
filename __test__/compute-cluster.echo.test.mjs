// Jobs and replies cross Node's IPC channel unchanged: structured values,
// unicode, large payloads, thousands of jobs; Node-internal messages are not
// results.
import assert from 'node:assert/strict';
import os from 'node:os';
import test from 'node:test';
import { COMPLETED, Harness, PASSING, TEST, fixture, waitFor } from './cc-helpers.mjs';

const echo = fixture('echo.js');

function nested(depth) {
  let v = { leaf: true };
  for (let i = 0; i < depth; i++) v = { depth: i, child: v, list: [i, [i * 2]] };
  return v;
}

const values = [
  // strings
  'hello',
  '',
  'line one\nline two\r\nline three\ttabbed',
  'quotes: "double" \'single\' `back` and a \\ backslash and a / slash',
  'line and paragraph separators: \u2028 \u2029 end',
  'emoji: 😀 👍🏽 👩‍👩‍👧 🏳️‍🌈 🇫🇷',
  'héllo wörld, 日本語, العربية, עברית, Ελληνικά, ẞ',
  'controls: \u0000 \u0001 \u001f \u007f',
  '{"looks":"like json"}\n',
  // numbers
  0,
  1,
  -1,
  42,
  3.14159,
  -2.5e-8,
  0.1 + 0.2,
  1e21,
  -1e300,
  5e-324,
  1.7976931348623157e308,
  Number.MAX_SAFE_INTEGER,
  -Number.MAX_SAFE_INTEGER,
  2 ** 53 + 2,
  2 ** 63,
  2 ** 64,
  -(2 ** 63),
  // booleans and null
  true,
  false,
  null,
  // arrays and objects
  [],
  {},
  [1, 'two', null, true, false, -3.5, [4, [5, { six: 6 }]]],
  { a: { b: { c: [{ d: 'e' }, [], {}] } }, z: null, n: -0.5 },
  { 'ключ': 'значение', '😀': 1, 'with space': 2, '': 'empty key', 'a"b': 'quote in key', '\u2028': 'sep' },
  { z: 1, a: 2, m: 3, 10: 'ten', 2: 'two' },
  nested(40),
  Array.from({ length: 500 }, (_, i) => ({ i, s: String(i), even: i % 2 === 0 })),
];

test('structured values come back unchanged (deep equality and key order)', TEST, async (t) => {
  const h = new Harness(t, { module: echo, max_processes: 2, max_backlog: -1 });
  const jobs = values.map((v, i) => h.job(v, i));
  await Promise.all(jobs.map((j) => j.done));
  for (const j of jobs) {
    assert.equal(j.calls.length, 1);
    assert.equal(j.err, null, `value #${j.tag}: err must be null`);
    assert.deepEqual(j.result, j.args, `value #${j.tag}`);
    assert.equal(JSON.stringify(j.result), JSON.stringify(j.args), `value #${j.tag} (key order)`);
  }
});

test('lone UTF-16 surrogates survive the round trip, as with Node IPC', TEST, async (t) => {
  const h = new Harness(t, { module: echo, max_processes: 1 });
  const v = { s: 'a\ud800b\udc00c\udfff', k: ['\ud83d', '\ude00'] };
  const { err, result } = await h.run(v);
  assert.equal(err, null);
  assert.deepEqual(result, v);
});

test('long strings, alone and in arrays, reach the worker exactly: every character JSON escapes', TEST, async (t) => {
  // A string of 256 units or more goes to the binding raw and is escaped there.
  const h = new Harness(t, { module: echo, max_processes: 2, max_backlog: -1 });
  const odd = ['"', '\\', '\u007f', '\u2028', '\ud800', '\udc00', '\ud83d\ude00', 'é', '\u0001:12:'];
  for (let c = 0; c < 0x20; c++) odd.push(String.fromCharCode(c));
  const strings = [];
  for (const len of [255, 256, 300]) {
    for (const c of odd) strings.push(c + 'abc'.repeat(len).slice(0, len - c.length), 'xyz'.repeat(len).slice(0, len - c.length) + c);
  }
  strings.push('abc'.repeat(1024), '€😀"\\\n'.repeat(200_000));
  const jobs = strings.flatMap((s, i) => [h.job(s, `s${i}`), h.job([s, i, 'short "q"', s], `a${i}`)]);
  await Promise.all(jobs.map((j) => j.done));
  for (const j of jobs) {
    assert.equal(j.err, null, `${j.tag}: err must be null`);
    assert.deepEqual(j.result, j.args, j.tag);
  }
});

test('a 1 MiB job and its reply cross intact', TEST, async (t) => {
  const h = new Harness(t, { module: echo, max_processes: 1 });
  const chunk = 'abcdefghij😀\n"\\\u2028';
  const big = { blob: chunk.repeat(Math.ceil((1 << 20) / chunk.length)), list: Array.from({ length: 10000 }, (_, i) => i) };
  const { err, result } = await h.run(big);
  assert.equal(err, null);
  assert.equal(result.blob.length, big.blob.length);
  assert.ok(result.blob === big.blob, 'blob differs');
  assert.deepEqual(result.list, big.list);
  const after = await h.run('after');
  assert.deepEqual([after.err, after.result], [null, 'after']);
});

test("a worker's Node-internal {cmd:'NODE_CLUSTER'} messages are never results", TEST, async (t) => {
  const h = new Harness(t, { module: fixture('internal-noise.js'), max_processes: 2 });
  const jobs = Array.from({ length: 20 }, (_, i) => h.job({ i }, i));
  await Promise.all(jobs.map((j) => j.done));
  for (const j of jobs) assert.deepEqual([j.err, j.result], [null, { i: j.tag }]);
  assert.deepEqual(h.errors, []);
});

test('5000 echo jobs over 10 × cpus workers each get their own reply, once', TEST, async (t) => {
  // 10 × cpus as asked; capped so a many-core CI box does not start hundreds.
  const max = Math.min(10 * os.cpus().length, 64);
  const h = new Harness(t, { module: echo, max_processes: max, max_backlog: -1 });
  const count = 5000;
  const jobs = [];
  for (let i = 0; i < count; i++) {
    jobs.push(h.job({ i, s: 'ß'.repeat(i % 17), a: [i, 2500 - i, i / 7], odd: i % 2 === 1 }, i));
  }
  await Promise.all(jobs.map((j) => j.done));
  // let any duplicate callback arrive before counting
  await new Promise((resolve) => setImmediate(resolve));
  for (const j of jobs) {
    assert.equal(j.calls.length, 1, `job ${j.tag} called back ${j.calls.length} times`);
    assert.equal(j.err, null);
    assert.deepEqual(j.result, j.args, `job ${j.tag}`);
  }
  const spawned = h.spawnedPids;
  assert.ok(spawned.length >= 1 && spawned.length <= max, `${spawned.length} workers`);
  assert.equal(new Set(spawned).size, spawned.length);
  await waitFor(() => h.messages('debug', COMPLETED).length === count, 'one completed debug per job');
  assert.equal(h.messages('debug', PASSING).length, count);
  assert.deepEqual(h.errors, []);
});

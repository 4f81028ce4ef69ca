// The JSON text of arguments as the engine gets it: long strings go to the binding raw and are
// escaped there (lib/json.js, src/rawtext.rs). Every kind of character JSON.stringify escapes
// must reach the worker exactly, whichever native submit carries the batch.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import test from 'node:test';
import { TEST, codes, errorOf, fixture, openPool } from './pool-helpers.mjs';

const basic = fixture('basic.js');
const units = (s) => crypto.createHash('sha1').update(Buffer.from(s, 'utf16le')).digest('hex');

// Strings of 255, 256 and 257 units (either side of the raw path's threshold), each with one
// odd character at the start, in the middle and at the end.
function strings() {
  const odd = ['"', '\\', '\u007f', '\u2028', '\u2029', '\ud800', '\udbff', '\udc00', '\udfff',
    '\ud83d\ude00', '\ude00\ud83d', '\ud800\ud800', 'é', '€', '\u{10ffff}', ':', '\u0001:12:'];
  for (let c = 0; c < 0x20; c++) odd.push(String.fromCharCode(c));
  const out = [];
  for (const len of [255, 256, 257]) {
    out.push('y'.repeat(len));
    for (const c of odd) {
      const fill = 'abc'.repeat(len);
      const rest = len - c.length;
      out.push(c + fill.slice(0, rest), fill.slice(0, rest >> 1) + c + fill.slice(0, rest - (rest >> 1)),
        fill.slice(0, rest) + c);
    }
  }
  // Every escape class at once, and a long multi-byte one.
  let all = '"\\\ud800\udc00\ud83d\ude00é';
  for (let c = 0; c < 0x20; c++) all += String.fromCharCode(c);
  out.push(all.repeat(10), '€😀'.repeat(300), 'abc'.repeat(1024));
  return out;
}

test('long and short string arguments reach the worker exactly, every escape class, alone and mixed', TEST, async (t) => {
  const { pool } = openPool(t, { module: basic, maxWorkers: 2 });
  const all = strings();
  // Many in one batch (submitNamed), with short strings, numbers and objects between them.
  const got = await Promise.all(all.map((s, i) => pool.call('units', s, i, 'a"b\\c', s, { s: 1 })));
  for (let i = 0; i < all.length; i++) {
    assert.deepEqual(got[i], [units(all[i]), i, units('a"b\\c'), units(all[i]), { s: 1 }], `string ${i}`);
  }
  // Alone in its batch, and as run()'s single argument.
  for (const s of all) {
    assert.deepEqual(await pool.call('units', s), [units(s)]);
    assert.deepEqual(await pool.run(s, { name: 'units' }), [units(s)]);
  }
  // Strings inside objects and nested arrays are JSON.stringify's all the way.
  const nested = { a: all[5], b: [all[6], [all[7]]] };
  assert.deepEqual(await pool.call('identity', nested), nested);
});

test('raw strings go through submitCalls too: per-job options and binary attachments', TEST, async (t) => {
  const { pool } = openPool(t, { module: basic, maxWorkers: 2 });
  const all = strings();
  const opts = await Promise.all(all.map((s, i) =>
    pool.exec('units', [s, i], { timeout: 60000, priority: i % 3 })));
  for (let i = 0; i < all.length; i++) assert.deepEqual(opts[i], [units(all[i]), i]);
  const buf = Buffer.from([1, 2, 3]);
  const bins = await Promise.all(all.map((s) => pool.call('pair', s, buf)));
  for (let i = 0; i < all.length; i++) {
    assert.equal(bins[i][0], all[i]);
    assert.deepEqual([...bins[i][1]], [1, 2, 3]);
  }
});

test('maxMessage counts the escaped text of a raw string, not its raw length', TEST, async (t) => {
  const { pool } = openPool(t, { module: basic, maxWorkers: 1, maxMessage: 1000 });
  // 400 quotes: 402 units raw, 802 bytes as JSON; fits.
  assert.deepEqual(await pool.call('units', '"'.repeat(400)), [units('"'.repeat(400))]);
  // 600 quotes: 606 bytes raw but 1202 as JSON: over.
  const big = await errorOf(pool.call('units', '"'.repeat(600)));
  assert.equal(big.code, codes.MESSAGE_TOO_LARGE);
  assert.match(big.message, /the arguments are 1202 bytes as JSON/);
  // Control characters: 6 bytes each as JSON.
  const ctl = await errorOf(pool.call('units', 'x', '\u0001'.repeat(300)));
  assert.match(ctl.message, /the arguments are 1806 bytes as JSON/);
  assert.deepEqual(await pool.call('units', 'x'.repeat(990)), [units('x'.repeat(990))], 'the pool serves on');
});

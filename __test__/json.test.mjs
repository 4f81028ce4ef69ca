// lib/json.js must produce exactly what JSON.stringify produces, fast path or not.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const { stringify } = require('../lib/json.js');

const long = (s, n = 300) => s.repeat(Math.ceil(n / s.length));

test('the long-string fast path gives JSON.stringify output exactly', () => {
  const cases = [
    long('abc', 3072),
    [long('abc', 3072)],
    [long('abc'), 1, null, undefined, 'short', { a: 1 }, [2, 3], true],
    [long('quote"')],
    [long('back\\slash')],
    [long('new\nline')],
    [long('tab\t')],
    [long('\u0000nul')],
    [long('\u001fus')],
    [long('é')],
    [long('😀')],
    ['\ud800' + long('lone surrogate ')],
    [long('x') + '\udc00'],
    [new Date(0), long('z')],
    [() => 1, long('f')].slice(1),
    'short',
    42,
    { a: long('b') },
    [],
    null,
  ];
  for (const c of cases) {
    assert.equal(stringify(c), JSON.stringify(c), JSON.stringify(c)?.slice(0, 40));
  }
  assert.equal(stringify(undefined), undefined);
  assert.equal(stringify([long('a'), undefined]), JSON.stringify([long('a'), undefined]));
});

test('raw long strings (for the native submit) become JSON.stringify output again in unraw', () => {
  const { unraw, RAW_MARK } = require('../lib/json.js');
  let ctl = '';
  for (let c = 0; c < 0x20; c++) ctl += String.fromCharCode(c);
  const cases = [
    long('abc', 3072),
    [long('abc'), 1, 'short', { a: long('b') }, long('q"\\' + ctl)],
    [long('é😀'), long('\u0001:3:')],
    ['\ud800' + long('lone '), long('x') + '\udc00'],
    [long('y', 255), long('y', 256)],
  ];
  for (const c of cases) {
    const raw = stringify(c, true);
    assert.equal(unraw(raw), JSON.stringify(c));
  }
  assert.ok(stringify(long('abc'), true).startsWith(`${RAW_MARK}300:abc`));
  assert.ok(!stringify('\ud800' + long('a'), true).includes(RAW_MARK), 'a lone surrogate goes as JSON');
  assert.ok(!stringify(long('a', 255), true).includes(RAW_MARK), 'short strings go as JSON');
});

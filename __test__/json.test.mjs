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

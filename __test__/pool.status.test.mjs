// pool.statusHandler(): the handler under node:http and Express, its JSON, and the page's
// self-containment. The page drawn in a real browser: status-page.browser.test.mjs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { createRequire } from 'node:module';
import {
  Pool, codes, fixture, openPool, errorOf, waitFor, TEST,
} from './pool-helpers.mjs';

const require = createRequire(import.meta.url);
const express = require('express');

async function listen(t, handler) {
  const server = http.createServer(handler);
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => {
    server.closeAllConnections();
    return new Promise((resolve) => server.close(resolve));
  });
  return `http://127.0.0.1:${server.address().port}`;
}

// Polls an async predicate every 50 ms; fails after 20 s.
async function until(pred, what) {
  const end = Date.now() + 20000;
  while (!(await pred())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

const json = async (url) => {
  const r = await fetch(url);
  assert.equal(r.status, 200);
  assert.match(r.headers.get('content-type'), /^application\/json/);
  return r.json();
};

test('JSON: workers, totals, history sampled each second, the last 50 errors and the exits with their reasons', TEST, async (t) => {
  const { pool } = openPool(t, { module: fixture('observe.js'), name: 'web', minWorkers: 2, maxWorkers: 2 });
  const base = await listen(t, pool.statusHandler());
  await waitFor(() => pool.pids.length === 2, 'two workers');
  // 60 thrown errors, one after the other: the page keeps the last 50, oldest first.
  for (let i = 0; i < 60; i++) await errorOf(pool.call('fail', `boom ${i}`));
  let s = await json(`${base}/?format=json`);
  assert.equal(s.pools.length, 1);
  let [p] = s.pools;
  assert.equal(p.name, 'web');
  assert.deepEqual(p.stats.workers.map((w) => w.pid).sort(), pool.pids.sort());
  assert.equal(p.stats.errored, 60);
  assert.equal(p.errors.length, 50);
  assert.deepEqual([p.errors[0].message, p.errors[49].message], ['boom 10', 'boom 59']);
  assert.equal(p.errors[49].function, 'fail');
  // The history gains a sample a second while the pool runs.
  const before = p.history.t.length;
  await until(async () => (await json(`${base}/?format=json`)).pools[0].history.t.length >= before + 2,
    'two more history samples');
  // A worker killed with SIGKILL is listed with reason crash.
  const victim = pool.pids[0];
  process.kill(victim, 'SIGKILL');
  await until(async () => (await json(`${base}/?format=json`)).pools[0].exits.some((e) => e.pid === victim),
    'the exit listed');
  s = await json(`${base}/?format=json`);
  [p] = s.pools;
  const exit = p.exits.find((e) => e.pid === victim);
  assert.equal(exit.reason, 'crash');
  assert.equal(exit.signal, 'SIGKILL');
  assert.equal(exit.expected, false);
  assert.equal(p.history.queued.length, p.history.t.length);
  assert.equal(p.history.throughput.length, p.history.t.length);
});

test('HTML: one self-contained read-only page; only GET and HEAD', TEST, async (t) => {
  const { pool } = openPool(t, { module: fixture('observe.js') });
  const base = await listen(t, pool.statusHandler());
  const r = await fetch(`${base}/`);
  assert.equal(r.status, 200);
  assert.match(r.headers.get('content-type'), /^text\/html; charset=utf-8/);
  // The browser may load nothing from anywhere else, whatever the page says.
  assert.match(r.headers.get('content-security-policy'), /default-src 'none'/);
  assert.equal(r.headers.get('cache-control'), 'no-store');
  const html = await r.text();
  assert.match(html, /^<!doctype html>/);
  assert.doesNotMatch(html, /<(link|img|iframe|form|button|input)\b/i, 'nothing loaded, nothing to press');
  assert.doesNotMatch(html, /\bsrc\s*=|@import|url\(|@font-face/i);
  // The only absolute URL is the SVG namespace.
  assert.deepEqual([...new Set(html.match(/https?:\/\/[^\s'"]+/g))], ['http://www.w3.org/2000/svg']);
  assert.doesNotMatch(html, /method:\s*['"](POST|PUT|DELETE|PATCH)/i);
  const head = await fetch(`${base}/?format=json`, { method: 'HEAD' });
  assert.equal(head.status, 200);
  assert.equal(await head.text(), '');
  for (const method of ['POST', 'PUT', 'DELETE']) {
    const w = await fetch(`${base}/`, { method });
    assert.equal(w.status, 405, method);
    assert.equal(w.headers.get('allow'), 'GET, HEAD');
  }
  await pool.close();
  // A closed pool's page still answers.
  const after = await json(`${base}/?format=json`);
  assert.equal(after.pools[0].stats.workers.length, 0);
});

test('Express: Pool.statusHandler([a, b]) on a route shows both pools', TEST, async (t) => {
  const { pool: a } = openPool(t, { module: fixture('observe.js'), name: 'a' });
  const { pool: b } = openPool(t, { module: fixture('observe.js'), name: 'b' });
  await Promise.all([a.call('ok', 1), b.run(2)]);
  const app = express();
  app.get('/status', Pool.statusHandler([a, b]));
  const base = await listen(t, app);
  const s = await json(`${base}/status?format=json`);
  assert.deepEqual(s.pools.map((p) => [p.name, p.stats.completed]), [['a', 1], ['b', 1]]);
  const page = await fetch(`${base}/status`);
  assert.match(page.headers.get('content-type'), /^text\/html/);
  assert.throws(() => Pool.statusHandler([a, 'b']), { code: codes.INVALID_ARGUMENT });
});

test('long texts are clipped in the recent errors, and long function names get no metrics label', TEST, async (t) => {
  const { pool } = openPool(t, { module: fixture('observe.js'), maxWorkers: 1 });
  await errorOf(pool.call('fail', 'x'.repeat(10000)));
  const long = 'f'.repeat(200);
  assert.equal((await errorOf(pool.call(long))).code, codes.UNKNOWN_FUNCTION);
  const [p] = (await new Promise((resolve) => {
    const res = { setHeader() {}, end: (body) => resolve(JSON.parse(body)) };
    pool.statusHandler()({ method: 'GET', url: '/?format=json' }, res);
  })).pools;
  assert.equal(p.errors[0].message, `${'x'.repeat(500)}…`);
  assert.equal(p.errors[1].function, long);
  assert.ok(!pool.metrics().includes(long), 'no label for a 200-character name');
  assert.match(pool.metrics(), /comrade_jobs_total\{pool="default",function="fail",outcome="error"\} 1/);
});

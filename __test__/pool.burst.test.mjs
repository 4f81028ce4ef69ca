// Deadline-driven growth (issue 10, item 10): map(items, { finishBy }) grows the pool past
// maxWorkers, up to burstWorkers, while the batch's run times say it would finish late; the
// extra workers leave by idleTimeout afterwards. Proved with real workers, by counts: the
// worker pids that ran jobs, spawns and exits, never durations.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import test from 'node:test';
import {
  TEST, fixture, openPool, rejectsWith, entries, waitFor, codes, Pool,
} from './pool-helpers.mjs';

const mod = fixture('burst.js');

// 30 naps of 100 ms: one worker needs at least 3 s (a timer never fires early), so a finishBy
// 1.5 s away is one the fixed pool misses, whatever the machine.
const NAPS = Array.from({ length: 30 }, () => 100);
const WINDOW_MS = 1500;

test('a batch behind its finishBy grows the pool past maxWorkers, at most to burstWorkers, and the extra workers leave by idleTimeout', TEST, async (t) => {
  const { pool, log } = openPool(t, {
    module: mod, maxWorkers: 1, minWorkers: 1, burstWorkers: 3, idleTimeout: 300,
  });
  assert.equal(pool.burstWorkers, 3);
  let most = 0;
  pool.on('workerSpawn', () => {
    most = Math.max(most, pool.pids.length);
  });
  const pids = await pool.map(NAPS, { name: 'nap', finishBy: Date.now() + WINDOW_MS });
  assert.equal(pids.length, NAPS.length, 'the batch completes');
  const distinct = new Set(pids);
  assert.ok(distinct.size > 1, `the jobs ran on ${distinct.size} worker(s): the pool did not grow`);
  assert.ok(distinct.size <= 3, `${distinct.size} workers ran jobs, more than burstWorkers`);
  assert.ok(entries(log, 'workerSpawn').length <= 3, 'never more than burstWorkers spawned');
  assert.ok(most <= 3);
  // Idle for idleTimeout, the extra workers go (minWorkers keeps one).
  await waitFor(() => pool.pids.length === 1, 'the pool to shrink back to maxWorkers', 20000);
  const exits = entries(log, 'workerExit').map((e) => e[1]);
  assert.equal(exits.length, entries(log, 'workerSpawn').length - 1);
  assert.ok(exits.every((e) => e.reason === 'idle' && e.expected), JSON.stringify(exits));
  // A later batch without a finishBy does not grow it again.
  const again = await pool.map(NAPS.slice(0, 10), { name: 'nap' });
  assert.equal(new Set(again).size, 1);
  assert.equal(pool.pids.length, 1);
});

test('without a finishBy (or without burstWorkers) a batch never grows the pool past maxWorkers', TEST, async (t) => {
  const { pool, log } = openPool(t, { module: mod, maxWorkers: 1, burstWorkers: 4 });
  const pids = await pool.map(NAPS.slice(0, 12).map(() => 20), { name: 'nap' });
  assert.equal(new Set(pids).size, 1);
  assert.equal(entries(log, 'workerSpawn').length, 1);
  // burstWorkers defaults to maxWorkers: a finishBy alone changes nothing.
  const fixed = openPool(t, { module: mod, maxWorkers: 1 });
  assert.equal(fixed.pool.burstWorkers, 1);
  const late = await fixed.pool.mapSettled(NAPS.slice(0, 8), { name: 'nap', finishBy: new Date(Date.now() + 200) });
  assert.ok(late.every((r) => r.status === 'fulfilled'));
  assert.equal(new Set(late.map((r) => r.value)).size, 1);
  assert.equal(entries(fixed.log, 'workerSpawn').length, 1);
});

test('mapSettled takes a finishBy too, as a Date', TEST, async (t) => {
  const { pool } = openPool(t, { module: mod, maxWorkers: 1, burstWorkers: 2 });
  // 30 naps (3 s at least on one worker) by 1 s from now.
  const out = await pool.mapSettled(NAPS, { name: 'nap', finishBy: new Date(Date.now() + 1000) });
  assert.equal(out.length, 30);
  const distinct = new Set(out.map((r) => r.value));
  assert.equal(distinct.size, 2, 'grown to burstWorkers');
});

test('bad input: a finishBy not in the future or not a time, speculate without a finishBy, burstWorkers below maxWorkers', TEST, async (t) => {
  const { pool } = openPool(t, { module: mod, maxWorkers: 2, burstWorkers: 4 });
  const past = await rejectsWith(pool.map([1], { name: 'nap', finishBy: Date.now() - 1 }), codes.INVALID_ARGUMENT);
  assert.match(past.message, /finishBy .* is not in the future/);
  await rejectsWith(pool.mapSettled([1], { finishBy: new Date(Date.now() - 1000) }), codes.INVALID_ARGUMENT);
  for (const finishBy of ['tomorrow', NaN, Infinity, new Date('nope'), {}, null]) {
    const e = await rejectsWith(pool.map([1], { finishBy }), codes.INVALID_ARGUMENT);
    assert.match(e.message, /finishBy must be a time/);
  }
  const s = await rejectsWith(pool.map([1], { speculate: true }), codes.INVALID_ARGUMENT);
  assert.match(s.message, /speculate needs options.finishBy/);
  await rejectsWith(pool.map([1], { speculate: 'yes', finishBy: Date.now() + 1000 }), codes.INVALID_ARGUMENT);
  // Nothing ran, nothing hangs: the pool still works.
  assert.deepEqual(await pool.map([5], { name: 'nap' }), [await pool.run(5, { name: 'nap' })]);
  assert.throws(() => new Pool({ module: mod, maxWorkers: 4, burstWorkers: 3 }),
    (e) => e.code === codes.INVALID_OPTION && /burstWorkers must be between 4 and 1024, got 3/.test(e.message));
  assert.throws(() => new Pool({ module: mod, maxWorkers: 4, burstWorkers: 4.5 }),
    (e) => e.code === codes.INVALID_OPTION && /burstWorkers must be an integer/.test(e.message));
});

test('speculate: near finishBy a straggler runs again on an idle worker; the first outcome wins, the stalled copy is cancelled, each item settles once', TEST, async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'comrade-speculate-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const { pool, log } = openPool(t, { module: mod, maxWorkers: 2, minWorkers: 2 });
  // Item 8's first execution holds its worker until cancelled; the other items answer at once,
  // so the batch's p90 is tiny and, near finishBy, item 8 is a straggler on a worker while the
  // other worker idles.
  const items = Array.from({ length: 12 }, (_, i) => ({ i, stall: 8, dir }));
  const seen = [];
  const out = await pool.map(items, {
    name: 'item', finishBy: Date.now() + 1500, speculate: true, onResult: (err, v, i) => seen.push(i),
  });
  assert.deepEqual(out.map((r) => r.i), items.map((x) => x.i));
  const stalledPid = Number(fs.readFileSync(path.join(dir, 'started-8'), 'utf8'));
  assert.equal(out[8].copy, true, 'item 8 settled with the copy');
  assert.notEqual(out[8].pid, stalledPid);
  // The stalled copy is cancelled on its worker (its signal aborts): cooperatively, the worker
  // lives on.
  await waitFor(() => fs.existsSync(path.join(dir, 'cancelled-8')), 'the stalled copy to be cancelled');
  assert.equal(Number(fs.readFileSync(path.join(dir, 'cancelled-8'), 'utf8')), stalledPid);
  assert.deepEqual([...seen].sort((a, b) => a - b), items.map((x) => x.i), 'each item settled once');
  assert.equal(pool.pending, 0);
  assert.ok(pool.pids.includes(stalledPid));
  assert.equal(entries(log, 'workerExit').length, 0);
  // Both workers still serve: the copy's late answer (an AbortError) reached nobody.
  const after = await pool.map(items.map((x) => ({ ...x, stall: -1 })), { name: 'item' });
  assert.equal(after.length, 12);
  assert.equal(seen.length, 12);
});

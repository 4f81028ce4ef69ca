// A teardown hook (issue 14, point 11): the module's teardown() runs when the pool stops the
// worker on purpose (close, idle, recycled, retired), bounded by killGraceMs.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import {
  TEST, entries, fixture, openPool, waitFor,
} from './pool-helpers.mjs';

const tmpdir = (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'comrade-teardown-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
};
const tornDown = (dir, pid) => fs.existsSync(path.join(dir, String(pid)));

test('close(): an async teardown runs before the worker exits', TEST, async (t) => {
  const dir = tmpdir(t);
  const { pool, log } = openPool(t, { module: fixture('teardown.js'), maxWorkers: 1, initData: { dir } });
  const pid = await pool.call('pid');
  assert.equal(tornDown(dir, pid), false);
  await pool.close();
  assert.equal(tornDown(dir, pid), true);
  const exit = entries(log, 'workerExit')[0][1];
  assert.equal(exit.code, 0);
  assert.equal(exit.expected, true);
});

test('idle, recycled and retired workers run a synchronous teardown', TEST, async (t) => {
  const dir = tmpdir(t);
  const { pool, log } = openPool(t, {
    module: fixture('teardown-sync.js'), maxWorkers: 1, maxJobsPerWorker: 2, idleTimeout: 200, initData: { dir },
  });
  const recycled = await pool.call('pid');
  await pool.call('pid');
  await waitFor(() => entries(log, 'workerExit').length === 1, 'the recycled worker to exit');
  assert.equal(tornDown(dir, recycled), true, 'recycled');
  const retired = await pool.call('retireMe');
  assert.notEqual(retired, recycled);
  await waitFor(() => entries(log, 'workerExit').length === 2, 'the retired worker to exit');
  assert.equal(tornDown(dir, retired), true, 'retired');
  const idle = await pool.call('pid');
  await waitFor(() => entries(log, 'workerExit').length === 3, 'the idle worker to exit');
  assert.equal(tornDown(dir, idle), true, 'idle');
  for (const [, e] of entries(log, 'workerExit')) assert.equal(e.code, 0);
});

test('a teardown that never finishes is SIGKILLed after killGraceMs', TEST, async (t) => {
  const dir = tmpdir(t);
  const { pool, log } = openPool(t, {
    module: fixture('teardown.js'), maxWorkers: 1, killGraceMs: 200, initData: { dir, hang: true },
  });
  const pid = await pool.call('pid');
  await pool.close();
  assert.equal(tornDown(dir, pid), true, 'it started');
  const exit = entries(log, 'workerExit')[0][1];
  assert.equal(exit.signal, 'SIGKILL');
  assert.equal(exit.expected, true);
});

test('terminate() does not run the teardown', TEST, async (t) => {
  const dir = tmpdir(t);
  const { pool } = openPool(t, { module: fixture('teardown.js'), maxWorkers: 1, initData: { dir } });
  const pid = await pool.call('pid');
  await pool.terminate();
  assert.equal(tornDown(dir, pid), false);
});

// Shared helpers for the Pool tests: a pool that records its events in order and is always
// terminated after its test (with any worker it spawned killed), and small async utilities.
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const require = createRequire(import.meta.url);
export const { Pool, PoolError, codes } = require('../index.js');

const here = path.dirname(fileURLToPath(import.meta.url));
export const repoRoot = path.dirname(here);
export const fixture = (name) => path.join(here, 'fixtures', 'pool', name);

export const TEST = { timeout: 30000 };

// The process and polling helpers are the compute-cluster suite's.
import {
  bounded, isGone, killIfAlive, runScript, settleAll, waitFor, within,
} from './cc-helpers.mjs';

export {
  bounded, isGone, killIfAlive, runScript, settleAll, waitFor, within,
};

/** Asserts that no process `pid` exists any more: process.kill(pid, 0) fails with ESRCH. */
export function assertReaped(pid) {
  assert.throws(() => process.kill(pid, 0), { code: 'ESRCH' }, `process ${pid} should be gone`);
}

/**
 * The error `promise` rejects with. Fails the test if it resolves instead. Call it as soon as
 * the promise exists, so its rejection is never unhandled.
 */
export async function errorOf(promise) {
  let value;
  try {
    value = await promise;
  } catch (e) {
    return e;
  }
  assert.fail(`expected a rejection, got ${String(JSON.stringify(value)).slice(0, 200)}`);
}

/** Asserts that `promise` rejects with `code`; returns the error. */
export async function rejectsWith(promise, code) {
  const err = await errorOf(promise);
  assert.ok(err instanceof Error, `expected an Error, got ${err}`);
  assert.equal(err.code, code, `expected code ${code}, got ${err.code}: ${err.message}`);
  return err;
}

/**
 * A pool under test. Every pool event lands in `log` in the order it was emitted:
 * ['workerSpawn', pid], ['workerExit', {pid, code, signal, expected}], ['workerRetire', pid],
 * ['event', name, data, pid], ['protocolError', {pid, message}]. After the test, pass or fail,
 * the pool is terminated (the test fails if terminate() hangs) and every worker it spawned is
 * killed if it still runs.
 */
export function openPool(t, options) {
  const pool = new Pool(options);
  const log = [];
  const spawned = [];
  pool.on('workerSpawn', ({ pid }) => {
    spawned.push(pid);
    log.push(['workerSpawn', pid]);
  });
  pool.on('workerExit', (info) => log.push(['workerExit', info]));
  pool.on('workerRetire', ({ pid }) => log.push(['workerRetire', pid]));
  pool.on('event', (name, data, pid) => log.push(['event', name, data, pid]));
  pool.on('protocolError', (info) => log.push(['protocolError', info]));
  // terminate() must resolve (a hang fails the test): within the kill grace, plus slack.
  const grace = typeof options.killGraceMs === 'number' && options.killGraceMs < 5000 ? options.killGraceMs : 5000;
  t.after(async () => {
    try {
      await bounded(pool.terminate(), grace + 10000, 'pool.terminate() in the test cleanup');
    } finally {
      spawned.forEach(killIfAlive);
    }
  });
  return { pool, log, spawned };
}

/** The entries of `log` of one type. */
export const entries = (log, type) => log.filter((e) => e[0] === type);

/**
 * Runs a fixture host script (from fixtures/pool) with `node`, SIGKILLing it after `timeout` ms.
 * Resolves with its exit code, signal, output and stdout lines.
 */
export function runNode(script, { timeout = 15000, ...options } = {}) {
  return runScript(script ? fixture(script) : null, { timeout, ...options });
}

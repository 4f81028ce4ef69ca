// Shared helpers for the ComputeCluster (compute-cluster drop-in) tests: a
// harness that records every event and callback in order and always shuts its
// cluster down, and a runner for fixture host scripts.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';

const require = createRequire(import.meta.url);
export const { ComputeCluster } = require('../index.js');

const here = path.dirname(fileURLToPath(import.meta.url));
export const fixture = (name) => path.join(here, 'fixtures', 'compute-cluster', name);

export const SPAWNED = /^spawned new worker process \((\d+)\) (\d+)\/(\d+) processes running$/;
export const PASSING = /^passing compute job to process (\d+)$/;
export const COMPLETED = /^process (\d+) completed work in \d+\.\d\ds$/;

export const TEST = { timeout: 30000 };

/** True once `pid` no longer runs (gone, or a zombie nobody reaped yet). */
export function isGone(pid) {
  try {
    process.kill(pid, 0);
  } catch {
    return true;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat[stat.lastIndexOf(')') + 2] === 'Z';
  } catch {
    return true;
  }
}

export function killIfAlive(pid) {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // already gone
  }
}

/** Polls `pred` every 10 ms; rejects after `timeout` ms so a hang fails. */
export async function waitFor(pred, what, timeout = 10000) {
  const end = Date.now() + timeout;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`timed out after ${timeout} ms waiting for ${what}`);
    await delay(10);
  }
}

/** `promise`, or undefined after `ms` without keeping Node alive for the timer. */
export function within(promise, ms) {
  let timer;
  const timeout = new Promise((resolve) => {
    timer = setTimeout(resolve, ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/**
 * `promise`'s value; fails (rejects with an Error naming `what`) if it has not settled after
 * `ms`. For waits that must not hang: a shutdown, a job.
 */
export function bounded(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not settle within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/**
 * Waits for every job to settle, at most `ms`: `jobs` is an array of [id, promise] (or of
 * promises, their index as id). Resolves with the `Promise.allSettled` results in order;
 * fails an assertion naming the ids of the jobs that never settled.
 */
export async function settleAll(jobs, ms, what = 'jobs') {
  const pairs = jobs.map((j, i) => (Array.isArray(j) ? j : [i, j]));
  const open = new Set(pairs.map(([id]) => id));
  const results = Promise.allSettled(pairs.map(([id, p]) => Promise.resolve(p).finally(() => open.delete(id))));
  let timer;
  const timeout = new Promise((resolve) => {
    timer = setTimeout(resolve, ms, null);
  });
  const r = await Promise.race([results, timeout]).finally(() => clearTimeout(timer));
  if (r === null) {
    const lost = [...open];
    assert.fail(`${lost.length} of ${pairs.length} ${what} never settled within ${ms} ms: ids ${lost.slice(0, 50).join(', ')}`);
  }
  return r;
}

/**
 * A cluster under test. Every 'info', 'debug' and 'error' event and every job
 * callback lands in `log` in the order it happened. The cluster is shut down
 * (and any worker still running killed) after the test, pass or fail.
 */
export class Harness {
  constructor(t, options) {
    this.cc = new ComputeCluster(options);
    this.log = [];
    for (const type of ['info', 'debug', 'error']) {
      this.cc.on(type, (msg) => this.log.push({ type, msg }));
    }
    // Note whether the test called exit() itself, so cleanup does not call it twice, and
    // when the first exit() completed (its callback ran), so cleanup can bound it.
    this.exitCalled = false;
    let exited;
    this.exitDone = new Promise((resolve) => {
      exited = resolve;
    });
    const exit = this.cc.exit;
    this.cc.exit = (...args) => {
      this.exitCalled = true;
      const cb = typeof args[0] === 'function' ? args[0] : null;
      return exit.call(this.cc, function exitCallback(...cbArgs) {
        exited();
        if (cb !== null) return cb.apply(this, cbArgs);
        return undefined;
      });
    };
    t.after(() => this.cleanup());
  }

  messages(type, re) {
    return this.log.filter((e) => e.type === type && (!re || re.test(e.msg))).map((e) => e.msg);
  }

  get infos() {
    return this.messages('info');
  }

  get debugs() {
    return this.messages('debug');
  }

  get errors() {
    return this.messages('error');
  }

  get spawnedPids() {
    return this.messages('info', SPAWNED).map((m) => Number(SPAWNED.exec(m)[1]));
  }

  /**
   * Enqueues `args` and returns a record of its callback calls. `done`
   * resolves at the first call; `calls[i].sync` says whether that call
   * happened before enqueue() returned. `returned` is enqueue's return value.
   */
  job(args, tag = args) {
    const rec = { args, tag, calls: [] };
    let inside = true;
    rec.done = new Promise((resolve) => {
      rec.returned = this.cc.enqueue(args, (...cbArgs) => {
        rec.calls.push({ args: cbArgs, sync: inside });
        this.log.push({ type: 'cb', tag, args: cbArgs });
        if (rec.calls.length === 1) {
          [rec.err, rec.result] = cbArgs;
          resolve(rec);
        }
      });
    });
    inside = false;
    return rec;
  }

  /** Runs one job to completion. */
  run(args, tag) {
    return this.job(args, tag).done;
  }

  /** Calls exit(cb) and resolves with the arguments of cb's first call. */
  exit() {
    return new Promise((resolve) => {
      this.cc.exit((...args) => resolve(args));
    });
  }

  /** After the test: exit() must complete (a hang fails the test); no worker survives. */
  async cleanup() {
    try {
      if (!this.exitCalled) this.exit();
      await bounded(this.exitDone, 15000, 'cc.exit() in the test cleanup');
      await waitFor(() => this.spawnedPids.every(isGone), 'workers to exit', 3000).catch(() => {});
    } finally {
      this.spawnedPids.forEach(killIfAlive);
    }
  }
}

/**
 * Runs `node [...nodeArgs] file [...args]` (no file: just the flags), SIGKILLing it after
 * `timeout` ms. `onLine` sees each stdout line as it arrives; `keep` bounds how much stdout is
 * kept (all of it is counted in `stdoutBytes`). Resolves with its exit code, signal and output.
 */
export function runScript(file, {
  args = [], nodeArgs = [], env = {}, timeout = 20000, onLine = null, keep = Infinity, grace = 2000,
} = {}) {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [...nodeArgs, ...(file ? [file] : []), ...args], {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stdoutBytes = 0;
    let stderr = '';
    let pending = '';
    let timedOut = false;
    child.stdout.setEncoding('utf8').on('data', (chunk) => {
      stdoutBytes += Buffer.byteLength(chunk);
      if (stdout.length < keep) stdout += chunk.slice(0, keep - stdout.length);
      if (!onLine) return;
      pending += chunk;
      const lines = pending.split('\n');
      pending = lines.pop();
      for (const line of lines) onLine(line, child);
    });
    child.stderr.setEncoding('utf8').on('data', (chunk) => {
      stderr += chunk;
    });
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeout);
    let graceTimer;
    const finish = () => {
      clearTimeout(timer);
      clearTimeout(graceTimer);
      const { exitCode: code, signalCode: signal } = child;
      resolve({
        code, signal, stdout, stdoutBytes, stderr, timedOut, lines: stdout.split('\n').filter(Boolean),
      });
    };
    child.on('close', finish);
    // Workers that outlive the host keep its stdout open, and so 'close' away.
    child.on('exit', () => {
      graceTimer = setTimeout(finish, grace);
    });
  });
}

/** Runs a compute-cluster fixture host script (see runScript). */
export function runNode(script, options = {}) {
  return runScript(fixture(script), options);
}

// Pool fault handling with real worker processes: workers killed or exiting mid-job (with and
// without retries), run timeouts, AbortSignal, arguments that cannot be sent, workers that
// break the channel protocol, flood stdout or cannot load, shutdown of stubborn workers, and no
// orphans when the host dies.
import assert from 'node:assert/strict';
import { getEventListeners } from 'node:events';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import test from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import {
  TEST, entries, errorOf, isGone, killIfAlive, openPool, rejectsWith, runScript, waitFor, within,
} from './pool-helpers.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const manage = (name) => path.join(here, 'fixtures', 'manage', name);
const work = manage('work.js');

const exits = (log) => entries(log, 'workerExit').map((e) => e[1]);
const exitOf = (log, pid) => exits(log).find((e) => e.pid === pid);

/** A fresh directory in os.tmpdir(), removed after the test. */
function tmpDir(t) {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'comrade-faults-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** The pid of the (only) busy worker, once there is one. */
async function busyPid(pool) {
  let pid;
  await waitFor(() => {
    const w = pool.stats().workers.find((x) => x.state === 'busy');
    pid = w && w.pid;
    return pid !== undefined;
  }, 'a busy worker');
  return pid;
}

/** Resolves once process `pid` is gone: process.kill(pid, 0) throws ESRCH. */
async function waitReaped(pid, what = `process ${pid} to be reaped`) {
  await waitFor(() => {
    try {
      process.kill(pid, 0);
      return false;
    } catch (e) {
      return e.code === 'ESRCH';
    }
  }, what);
}

// ----- crashes -----

test('a worker SIGKILLed mid-job, without retries: ERR_WORKER_EXITED with the pid and signal', TEST, async (t) => {
  const { pool, log } = openPool(t, { module: work, maxWorkers: 1 });
  const job = errorOf(pool.call('slow', 30000, 'never'));
  const pid = await busyPid(pool);
  process.kill(pid, 'SIGKILL');
  const err = await job;
  assert.equal(err.code, 'ERR_WORKER_EXITED', err.message);
  assert.equal(err.pid, pid);
  assert.equal(err.signal, 'SIGKILL');
  assert.equal(err.exitCode, null);
  // The pool serves on a new worker.
  const next = await pool.call('pid');
  assert.notEqual(next, pid);
  const s = pool.stats();
  assert.equal(s.failed, 1);
  assert.equal(s.retried, 0);
  assert.equal(s.completed, 1);
  // A crash: not expected.
  await waitFor(() => exitOf(log, pid), 'the workerExit event');
  assert.deepEqual(exitOf(log, pid), { pid, code: null, signal: 'SIGKILL', expected: false, reason: 'crash' });
});

test('a worker SIGKILLed mid-job, with retries: 1, the job runs again and resolves', TEST, async (t) => {
  const { pool, log } = openPool(t, { module: work, maxWorkers: 1, retries: 1 });
  const job = pool.call('slow', 1500, 'second try');
  const pid = await busyPid(pool);
  process.kill(pid, 'SIGKILL');
  const r = await job;
  assert.equal(r.v, 'second try');
  assert.notEqual(r.pid, pid);
  assert.equal(exitOf(log, pid).signal, 'SIGKILL');
  assert.equal(pool.stats().retried, 1);
  assert.equal(pool.stats().failed, 0);
});

test('a job that kills its worker on the first attempt only resolves with retries: 1', TEST, async (t) => {
  const dir = tmpDir(t);
  const { pool, spawned } = openPool(t, { module: work, maxWorkers: 2, retries: 1 });
  const r = await pool.run({ marker: path.join(dir, 'pool-default'), v: 'ok' }, { name: 'killOnce' });
  assert.equal(r.v, 'ok');
  assert.notEqual(r.pid, r.killed, 'the second attempt ran on another worker');
  assert.ok(spawned.includes(r.killed) && spawned.includes(r.pid));
  assert.equal(pool.stats().retried, 1);

  // The same with a per-job retries option on a pool without retries.
  const { pool: p0 } = openPool(t, { module: work, maxWorkers: 2 });
  const r2 = await p0.run({ marker: path.join(dir, 'per-job'), v: 'per job' }, { name: 'killOnce', retries: 1 });
  assert.equal(r2.v, 'per job');
  assert.notEqual(r2.pid, r2.killed);
  // And without any retries it fails.
  const err = await errorOf(p0.run({ marker: path.join(dir, 'none'), v: 'x' }, { name: 'killOnce' }));
  assert.equal(err.code, 'ERR_WORKER_EXITED');
  assert.equal(err.signal, 'SIGKILL');
});

test('a job that always kills its worker fails after exactly 1 + retries attempts', TEST, async (t) => {
  const dir = tmpDir(t);
  const file = path.join(dir, 'attempts');
  const { pool, log, spawned } = openPool(t, { module: work, maxWorkers: 1, retries: 2 });
  const err = await errorOf(pool.call('killAlways', file));
  assert.equal(err.code, 'ERR_WORKER_EXITED', err.message);
  assert.equal(err.signal, 'SIGKILL');
  const attempts = readFileSync(file, 'utf8').split('\n').filter(Boolean).map(Number);
  assert.equal(attempts.length, 3, `attempts by ${attempts}`);
  assert.equal(new Set(attempts).size, 3, 'each attempt on a new worker');
  assert.equal(err.pid, attempts[2], 'the error names the last worker');
  assert.deepEqual(spawned, attempts);
  await waitFor(() => exits(log).length === 3, 'three workerExit events');
  assert.deepEqual(exits(log).map((e) => [e.pid, e.signal]), attempts.map((p) => [p, 'SIGKILL']));
  const s = pool.stats();
  assert.equal(s.retried, 2);
  assert.equal(s.failed, 1);
  assert.equal(s.completed, 0);
  // Nothing runs it again.
  await delay(300);
  assert.equal(readFileSync(file, 'utf8').split('\n').filter(Boolean).length, 3);
  assert.equal(spawned.length, 3);
  // Three crashes: none expected.
  assert.deepEqual(exits(log).map((e) => e.expected), [false, false, false]);
});

test('a worker that exits with code 0 mid-job: ERR_WORKER_EXITED with exitCode 0', TEST, async (t) => {
  const { pool, log } = openPool(t, { module: work, maxWorkers: 1 });
  const pid = await pool.call('pid');
  const err = await errorOf(pool.call('exitZero'));
  assert.equal(err.code, 'ERR_WORKER_EXITED', err.message);
  assert.equal(err.exitCode, 0);
  assert.equal(err.signal, null);
  assert.equal(err.pid, pid);
  assert.notEqual(await pool.call('pid'), pid);
  // The pool did not stop it: not expected, even with code 0.
  await waitFor(() => exitOf(log, pid), 'the workerExit event');
  assert.deepEqual(exitOf(log, pid), { pid, code: 0, signal: null, expected: false, reason: 'crash' });
});

// ----- timeouts -----

test('run timeout: a looping job fails ERR_JOB_TIMEOUT, its worker is killed and replaced', TEST, async (t) => {
  const { pool, log } = openPool(t, { module: work, maxWorkers: 1 });
  const looping = pool.run(null, { name: 'loop', timeout: 300 });
  const queued = pool.call('slow', 1, 'behind the loop');
  const pid = await busyPid(pool);
  const err = await rejectsWith(looping, 'ERR_JOB_TIMEOUT');
  assert.equal(err.pid, pid);
  // The job queued behind it runs on a new worker.
  const r = await queued;
  assert.equal(r.v, 'behind the loop');
  assert.notEqual(r.pid, pid);
  await waitReaped(pid);
  await waitFor(() => exitOf(log, pid), 'the workerExit event');
  assert.equal(exitOf(log, pid).signal, 'SIGKILL');
  // The pool killed it for the timeout: not a crash.
  assert.equal(exitOf(log, pid).expected, true);
  assert.equal(exitOf(log, pid).reason, 'timeout');
  // A job that finishes within its timeout is not touched.
  assert.equal((await pool.run({ ms: 10, v: 'quick' }, { name: 'slow', timeout: 10000 })).pid, r.pid);
  assert.equal(pool.stats().failed, 1);
});

test('the pool default timeout applies to every job, and a per-job timeout overrides it', TEST, async (t) => {
  const { pool } = openPool(t, { module: work, maxWorkers: 2, timeout: 300 });
  const [a, b, c] = await Promise.allSettled([
    pool.call('loop'),
    pool.run({ ms: 600, v: 'long allowed' }, { name: 'slow', timeout: 20000 }),
    pool.call('slow', 5, 'short'),
  ]);
  assert.equal(a.status, 'rejected');
  assert.equal(a.reason.code, 'ERR_JOB_TIMEOUT');
  assert.equal(b.status, 'fulfilled', b.reason && b.reason.message);
  assert.equal(b.value.v, 'long allowed');
  assert.equal(c.status, 'fulfilled', c.reason && `${c.reason.code}: ${c.reason.message}`);
  await waitReaped(a.reason.pid);
  assert.equal((await pool.call('slow', 1, 'after')).v, 'after');
});

test("the run timeout does not count the worker's startup", TEST, async (t) => {
  // The module takes 600 ms to load; the jobs take no time. Sent to a worker still starting,
  // they must not time out while it loads.
  const { pool, spawned } = openPool(t, { module: manage('slow-start.js'), maxWorkers: 1, timeout: 300 });
  const [a, b] = await Promise.allSettled([pool.call('echo', 'a'), pool.run('b', { name: 'echo', timeout: 300 })]);
  assert.deepEqual(a, { status: 'fulfilled', value: 'a' }, a.reason && `${a.reason.code}: ${a.reason.message}`);
  assert.deepEqual(b, { status: 'fulfilled', value: 'b' }, b.reason && `${b.reason.code}: ${b.reason.message}`);
  assert.equal(spawned.length, 1);
  assert.equal(pool.stats().failed, 0);
});

test('a reply that came in time is not timed out while the host\'s event loop is blocked', TEST, async (t) => {
  // One worker, one job at a time: the JS thread reads replies itself (direct reads). It is
  // then blocked for longer than the job's timeout; the reply, written within it, still counts.
  const { pool, spawned } = openPool(t, { module: work, maxWorkers: 1 });
  assert.equal(await pool.call('echo', 'warm'), 'warm');
  for (let i = 0; i < 3; i++) {
    const job = pool.run(i, { name: 'echo', timeout: 200 });
    await null; // the submission goes out
    const until = Date.now() + 600;
    while (Date.now() < until); // a blocked event loop
    assert.equal(await job, i);
  }
  assert.equal(spawned.length, 1, 'no worker was killed for a timeout');
  assert.equal(pool.stats().failed, 0);
});

test('a host busy with its own work does not starve the worker of its queued jobs', TEST, async (t) => {
  // With two jobs per worker, the JS thread reads the replies itself (direct reads) while it
  // keeps up. Blocked, it reads nothing: the engine's I/O thread then takes the reads back and
  // hands the worker the jobs queued behind its first two, while the JS thread is still blocked.
  const { pool } = openPool(t, { module: work, maxWorkers: 1, concurrency: 2 });
  assert.equal(await pool.call('echo', 'warm'), 'warm');
  const jobs = Array.from({ length: 200 }, () => pool.call('now'));
  await null; // the submissions go out
  const from = Date.now();
  const until = from + 600;
  while (Date.now() < until); // a blocked event loop
  const times = await Promise.all(jobs);
  const during = times.filter((x) => x >= from && x < until).length;
  assert.ok(during >= 50, `only ${during} of 200 jobs ran while the host was blocked`);
});

// ----- AbortSignal -----

test('abort a queued job: it rejects AbortError; the running job keeps its worker', TEST, async (t) => {
  const { pool, log, spawned } = openPool(t, { module: work, maxWorkers: 1 });
  const ac = new AbortController();
  const first = pool.run({ ms: 600, v: 'first' }, { name: 'slow' });
  const second = errorOf(pool.run({ ms: 1, v: 'second' }, { name: 'slow', signal: ac.signal }));
  const pid = await busyPid(pool);
  assert.equal(pool.stats().queued, 1);
  const reason = new Error('changed my mind');
  ac.abort(reason);
  const err = await second;
  assert.equal(err.name, 'AbortError');
  assert.equal(err.code, 'ABORT_ERR');
  assert.equal(err.cause, reason);
  assert.equal(pool.stats().queued, 0);
  assert.deepEqual(await first, { v: 'first', pid });
  assert.deepEqual(spawned, [pid]);
  assert.deepEqual(exits(log), []);
  assert.deepEqual(pool.pids, [pid]);
  assert.equal(pool.pending, 0);
  assert.equal(getEventListeners(ac.signal, 'abort').length, 0);
});

// cancelGraceMs 0: the worker is killed at once, as before cooperative cancellation (issue 14,
// point 2; pool.cancel.test.mjs covers the default, where the worker is sent a cancel first).
test('abort a running job (cancelGraceMs 0): it rejects AbortError; its worker is killed and replaced', TEST, async (t) => {
  const { pool, log } = openPool(t, { module: work, maxWorkers: 1, cancelGraceMs: 0 });
  const ac = new AbortController();
  const job = errorOf(pool.run({ ms: 30000, v: 'x' }, { name: 'slow', signal: ac.signal }));
  const behind = pool.call('slow', 1, 'behind');
  const pid = await busyPid(pool);
  ac.abort();
  const err = await job;
  assert.equal(err.name, 'AbortError');
  assert.equal(err.code, 'ABORT_ERR');
  assert.equal(err.cause, ac.signal.reason);
  assert.equal(err.cause.name, 'AbortError', 'the default reason of abort()');
  const r = await behind;
  assert.equal(r.v, 'behind');
  assert.notEqual(r.pid, pid);
  await waitFor(() => exitOf(log, pid), 'the aborted worker to exit');
  assert.equal(exitOf(log, pid).signal, 'SIGKILL');
  await waitReaped(pid);
  assert.equal(pool.pending, 0);
});

test("aborting a running job (cancelGraceMs 0) retries the other jobs its worker held (with retries)", TEST, async (t) => {
  const { pool, log } = openPool(t, { module: work, maxWorkers: 1, concurrency: 2, retries: 1, cancelGraceMs: 0 });
  const ac = new AbortController();
  const aborted = errorOf(pool.run({ ms: 30000, v: 'a' }, { name: 'slow', signal: ac.signal }));
  const neighbour = pool.run({ ms: 300, v: 'neighbour' }, { name: 'slow' });
  await waitFor(() => pool.stats().workers.some((w) => w.jobsInFlight === 2), 'both jobs on the worker');
  const pid = pool.pids[0];
  ac.abort();
  assert.equal((await aborted).code, 'ABORT_ERR');
  const r = await neighbour;
  assert.equal(r.v, 'neighbour');
  assert.notEqual(r.pid, pid, 'the neighbour ran again on the replacement');
  assert.equal(pool.stats().retried, 1);
  await waitFor(() => exitOf(log, pid), 'the killed worker to exit');
  assert.equal(exitOf(log, pid).signal, 'SIGKILL');
});

test('an already-aborted signal rejects at once and spawns nothing', TEST, async (t) => {
  const { pool, log } = openPool(t, { module: work, maxWorkers: 2 });
  const signal = AbortSignal.abort('too late');
  const err = await errorOf(pool.run('x', { signal }));
  assert.equal(err.name, 'AbortError');
  assert.equal(err.code, 'ABORT_ERR');
  assert.equal(err.cause, 'too late');
  await delay(100);
  assert.deepEqual(pool.pids, []);
  assert.deepEqual(entries(log, 'workerSpawn'), []);
  assert.equal(pool.pending, 0);
  assert.equal(getEventListeners(signal, 'abort').length, 0);
});

test('100,000 jobs sharing one signal: one listener while they run, none once they settle', { timeout: 60000 }, async (t) => {
  const { pool } = openPool(t, { module: work, maxWorkers: 2, concurrency: 64 });
  const ac = new AbortController();
  const N = 100000;
  const jobs = new Array(N);
  for (let i = 0; i < N; i++) jobs[i] = pool.run(i, { name: 'echo', signal: ac.signal });
  assert.equal(getEventListeners(ac.signal, 'abort').length, 1);
  const results = await Promise.all(jobs);
  let wrong = 0;
  for (let i = 0; i < N; i++) if (results[i] !== i) wrong++;
  assert.equal(wrong, 0);
  assert.equal(getEventListeners(ac.signal, 'abort').length, 0);
  // The signal still works for a later job.
  const late = errorOf(pool.run({ ms: 30000 }, { name: 'slow', signal: ac.signal }));
  assert.equal(getEventListeners(ac.signal, 'abort').length, 1);
  ac.abort();
  assert.equal((await late).code, 'ABORT_ERR');
  assert.equal(getEventListeners(ac.signal, 'abort').length, 0);
});

// ----- bad input -----

test('arguments that cannot be sent fail ERR_UNSERIALIZABLE; other jobs are unaffected', TEST, async (t) => {
  const { pool } = openPool(t, { module: work, maxWorkers: 1 });
  const cyclic = { a: 1 };
  cyclic.self = cyclic;
  const bad = [1n, cyclic, () => 1, Symbol('s'), { deep: [2n] }];
  // Good and bad jobs submitted in the same tick, interleaved.
  const jobs = [];
  for (let i = 0; i < bad.length; i++) {
    jobs.push(pool.call('echo', i));
    jobs.push(pool.call('echo', bad[i]));
  }
  jobs.push(pool.run(cyclic));
  jobs.push(pool.call('echo', 'last'));
  const settled = await Promise.allSettled(jobs);
  for (let i = 0; i < bad.length; i++) {
    assert.deepEqual(settled[2 * i], { status: 'fulfilled', value: i });
    const r = settled[2 * i + 1];
    assert.equal(r.status, 'rejected', `bad argument ${i}`);
    assert.equal(r.reason.code, 'ERR_UNSERIALIZABLE', r.reason.message);
  }
  assert.equal(settled.at(-2).reason.code, 'ERR_UNSERIALIZABLE');
  assert.deepEqual(settled.at(-1), { status: 'fulfilled', value: 'last' });
  const s = pool.stats();
  assert.equal(s.completed, bad.length + 1);
  assert.equal(s.rejected, bad.length + 1);
  assert.equal(s.failed, 0);
  assert.equal(pool.pending, 0);
});

test('a worker that writes garbage to its channel: protocolError, its job fails, others are fine', TEST, async (t) => {
  const { pool, log } = openPool(t, { module: work, maxWorkers: 2 });
  const others = Array.from({ length: 20 }, (_, i) => pool.call('slow', 5, i));
  const bad = errorOf(pool.call('garbage'));
  const err = await bad;
  assert.equal(err.code, 'ERR_WORKER_EXITED', err.message);
  assert.match(err.message, /protocol/);
  const pes = entries(log, 'protocolError').map((e) => e[1]);
  assert.equal(pes.length, 1);
  assert.equal(pes[0].pid, err.pid);
  assert.equal(typeof pes[0].message, 'string');
  assert.match(pes[0].message, /garbage/);
  assert.deepEqual((await Promise.all(others)).map((r) => r.v), Array.from({ length: 20 }, (_, i) => i));
  await waitFor(() => exitOf(log, err.pid), 'the broken worker to exit');
  // The pool killed it for breaking the protocol: not a crash.
  assert.equal(exitOf(log, err.pid).expected, true);
  assert.equal(exitOf(log, err.pid).reason, 'protocol');
  // The protocol error is reported before the exit.
  const i = log.findIndex((e) => e[0] === 'protocolError');
  const j = log.findIndex((e) => e[0] === 'workerExit' && e[1].pid === err.pid);
  assert.ok(i < j);
  assert.equal((await pool.call('slow', 1, 'after')).v, 'after');
});

/** Runs a fixture host with node, reading its stdout (keeping only the first 64 KiB). */
function runHost(script, args = [], { timeout = 30000, onLine = null } = {}) {
  return runScript(manage(script), { args, timeout, onLine, keep: 65536, grace: 3000 });
}

test('workers that flood stdout with megabytes do not break the pool', TEST, async () => {
  const bytes = 5 * 1024 * 1024;
  const r = await runHost('host-flood.js', [String(bytes)]);
  assert.equal(r.timedOut, false, `the host hung: ${r.stderr}`);
  assert.equal(r.code, 0, r.stderr);
  const line = r.stderr.split('\n').find((l) => l.startsWith('SUMMARY '));
  assert.ok(line, `no summary: ${r.stderr}`);
  const summary = JSON.parse(line.slice('SUMMARY '.length));
  assert.deepEqual(summary.floods, ['f1', 'f2']);
  assert.deepEqual(summary.echoes, Array.from({ length: 50 }, (_, i) => i));
  assert.equal(summary.after, 'after');
  assert.deepEqual(summary.stats, { completed: 53, errored: 0, failed: 0 });
});

test("workers inherit the host's stdout and stderr", TEST, async () => {
  const r = await runHost('host-stdio.js', ['out-marker-7d1', 'err-marker-3c9']);
  assert.equal(r.timedOut, false, `the host hung: ${r.stderr}`);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /^DONE \d+$/m);
  assert.match(r.stdout, /^out-marker-7d1$/m, `the worker's console.log reached the host's stdout: ${JSON.stringify(r.stdout)}`);
  assert.match(r.stderr, /^err-marker-3c9$/m, `the worker's console.error reached the host's stderr: ${JSON.stringify(r.stderr)}`);
});

test("a worker's 5 MB on stdout all reach the host's stdout", TEST, async () => {
  const bytes = 5 * 1024 * 1024;
  const r = await runHost('host-flood.js', [String(bytes)]);
  assert.equal(r.code, 0, r.stderr);
  assert.ok(r.stdoutBytes >= 2 * bytes, `${r.stdoutBytes} bytes reached the host's stdout, expected ${2 * bytes}`);
});

test('a module that throws at load: every job of the wave fails ERR_WORKER_INIT_FAILED, spawns are bounded', TEST, async (t) => {
  const { pool, log, spawned } = openPool(t, { module: manage('throws-at-load.js'), maxWorkers: 3 });
  const settled = await Promise.allSettled(Array.from({ length: 10 }, (_, i) => pool.run(i)));
  for (const s of settled) {
    assert.equal(s.status, 'rejected');
    assert.equal(s.reason.code, 'ERR_WORKER_INIT_FAILED', s.reason.message);
    assert.ok(s.reason.cause instanceof Error);
    assert.equal(s.reason.cause.message, 'load boom');
    assert.ok(spawned.includes(s.reason.pid));
  }
  assert.equal(pool.stats().failed, 10);
  // The pool does not keep trying in the background.
  await waitFor(() => pool.pids.length === 0, 'the failed workers to be gone');
  await delay(500);
  const wave = spawned.length;
  assert.deepEqual(pool.pids, []);
  await waitFor(() => exits(log).length === wave, 'an exit per spawn');
  // A new job tries again, and fails the same way.
  assert.equal((await errorOf(pool.run('again'))).code, 'ERR_WORKER_INIT_FAILED');
  // One wave of 10 jobs started no more workers than maxWorkers.
  assert.ok(wave >= 1 && wave <= 3, `the wave spawned ${wave} workers for maxWorkers 3`);
});

// ----- shutdown -----

// close() sends a worker {"t":"stop"} rather than SIGTERM (issue 14, point 11): a worker that
// ignores SIGTERM stops by itself (pool.teardown.test.mjs: a teardown that hangs is SIGKILLed
// after killGraceMs).
test('close() stops a worker that ignores SIGTERM: it is sent stop and exits 0', TEST, async (t) => {
  const { pool, log } = openPool(t, { module: manage('stubborn.js'), maxWorkers: 1, killGraceMs: 300 });
  const pid = await pool.call('pid');
  const closed = await within(pool.close().then(() => 'closed'), 20000);
  assert.equal(closed, 'closed', 'close() resolved');
  assert.ok(isGone(pid));
  await waitReaped(pid);
  assert.deepEqual(exitOf(log, pid), { pid, code: 0, signal: null, expected: true, reason: 'shutdown' });
  assert.deepEqual(pool.pids, []);
});

test('terminate() resolves while jobs run; they fail ERR_POOL_TERMINATED', TEST, async (t) => {
  const { pool, log, spawned } = openPool(t, { module: manage('stubborn.js'), maxWorkers: 2, killGraceMs: 300 });
  const jobs = Array.from({ length: 5 }, () => errorOf(pool.call('slow', 60000)));
  await waitFor(() => pool.stats().workers.filter((w) => w.state === 'busy').length === 2, 'two busy workers');
  const done = await within(pool.terminate().then(() => 'terminated'), 20000);
  assert.equal(done, 'terminated');
  for (const err of await Promise.all(jobs)) assert.equal(err.code, 'ERR_POOL_TERMINATED', err.message);
  assert.equal(spawned.length, 2);
  for (const pid of spawned) await waitReaped(pid);
  assert.equal(exits(log).length, 2);
  assert.equal(await within(pool.close().then(() => 'again'), 5000), 'again', 'close() after terminate() resolves');
  assert.equal((await errorOf(pool.call('pid'))).code, 'ERR_POOL_CLOSED');
});

test('no orphans: when the host is SIGKILLed, its workers die', TEST, async (t) => {
  let pids = null;
  t.after(() => pids && [...pids.work, ...pids.stubborn].forEach(killIfAlive));
  let aliveBefore = [];
  const r = await runHost('host-orphans.js', [], {
    timeout: 20000,
    onLine: (line, child) => {
      if (!line.startsWith('{') || pids) return;
      pids = JSON.parse(line);
      aliveBefore = [...pids.work, ...pids.stubborn].map((p) => !isGone(p));
      child.kill('SIGKILL');
    },
  });
  assert.ok(pids, `the host never reported its workers: ${r.stderr}`);
  assert.equal(r.signal, 'SIGKILL');
  const all = [...pids.work, ...pids.stubborn];
  assert.equal(all.length, 3);
  assert.deepEqual(aliveBefore, [true, true, true], 'the workers ran before the kill');
  await waitFor(() => all.every(isGone), 'the workers to die', 10000).catch(() => {});
  assert.deepEqual(all.filter((p) => !isGone(p)), [], 'orphaned workers');
});

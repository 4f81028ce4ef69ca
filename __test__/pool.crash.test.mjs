// A worker that dies holding jobs: those jobs reject ERR_WORKER_EXITED (with pid, exitCode,
// signal), other jobs are unaffected, and the pool goes on serving with a new worker.
import assert from 'node:assert/strict';
import test from 'node:test';
import { PoolError, TEST, entries, fixture, openPool, rejectsWith, waitFor } from './pool-helpers.mjs';

const crash = fixture('crash.js');
const EXITED = 'ERR_WORKER_EXITED';

/** Starts a hanging job and resolves with its promise and the pid of the worker holding it. */
async function hangingJob(pool) {
  let pid;
  const job = pool.run(null, { name: 'hang', onProgress: (p) => { pid = p; } });
  const settled = rejectsWith(job, EXITED);
  await waitFor(() => pid !== undefined, 'the job to start');
  return { settled, pid };
}

test('SIGKILL to a worker holding a job: ERR_WORKER_EXITED with signal and pid; the pool serves on', TEST, async (t) => {
  const { pool, log } = openPool(t, { module: crash, maxWorkers: 1 });
  const { settled, pid } = await hangingJob(pool);
  // Queued behind the hanging job on the only worker.
  const queued = [pool.call('echo', 'a'), pool.call('echo', 'b')];
  process.kill(pid, 'SIGKILL');
  const err = await settled;
  assert.ok(err instanceof PoolError);
  assert.equal(err.pid, pid);
  assert.equal(err.signal, 'SIGKILL');
  assert.equal(err.exitCode, null);
  assert.match(err.message, new RegExp(`${pid}.*SIGKILL`));

  // The queued jobs run on a replacement, without any new submission.
  const results = await Promise.all(queued);
  assert.deepEqual(results.map((r) => r.v), ['a', 'b']);
  assert.notEqual(results[0].pid, pid);
  assert.equal(await pool.call('pid'), results[0].pid);

  assert.equal(entries(log, 'workerSpawn').length, 2);
  assert.ok(!pool.pids.includes(pid));
  const exits = entries(log, 'workerExit');
  assert.equal(exits.length, 1);
  assert.deepEqual(exits[0][1], { pid, code: null, signal: 'SIGKILL', expected: false, reason: 'crash' },
    "a crash is reported with expected: false");
});

test('a worker that exits with a code mid-job: ERR_WORKER_EXITED with exitCode', TEST, async (t) => {
  const { pool, log } = openPool(t, { module: crash, maxWorkers: 1 });
  const first = await pool.call('pid');
  const err = await rejectsWith(pool.call('exit', 3), EXITED);
  assert.equal(err.pid, first);
  assert.equal(err.exitCode, 3);
  assert.equal(err.signal, null);
  assert.match(err.message, /exited with code 3/);
  const next = await pool.call('pid');
  assert.notEqual(next, first);
  await waitFor(() => entries(log, 'workerExit').length === 1, 'the exit event');
  assert.deepEqual(entries(log, 'workerExit')[0][1], { pid: first, code: 3, signal: null, expected: false, reason: 'crash' },
    "a crash is reported with expected: false");
});

test('an uncaught exception in a worker fails the jobs it held', TEST, async (t) => {
  const { pool } = openPool(t, { module: crash, maxWorkers: 1 });
  const err = await rejectsWith(pool.call('crashLater'), EXITED);
  assert.equal(err.exitCode, 1);
  assert.equal(typeof (await pool.call('pid')), 'number');
});

test('with concurrency, every job of the dead worker fails and only those', TEST, async (t) => {
  const { pool } = openPool(t, { module: crash, maxWorkers: 2, concurrency: 3 });
  // Six hanging jobs: the pool grows to two workers, three jobs each.
  const jobs = Array.from({ length: 6 }, () => {
    const job = { pid: undefined, outcome: 'pending' };
    job.promise = pool.run(null, { name: 'hang', onProgress: (p) => { job.pid = p; } });
    job.promise.then(() => { job.outcome = 'resolved'; }, (e) => { job.outcome = e.code; });
    return job;
  });
  await waitFor(() => jobs.every((j) => j.pid !== undefined), 'all six jobs to start');
  const byPid = new Map();
  jobs.forEach((j) => byPid.set(j.pid, (byPid.get(j.pid) || 0) + 1));
  assert.deepEqual([...byPid.values()], [3, 3]);
  const [victim, survivor] = [...byPid.keys()];
  process.kill(victim, 'SIGKILL');
  const doomed = jobs.filter((j) => j.pid === victim);
  await waitFor(() => doomed.every((j) => j.outcome !== 'pending'), "the dead worker's jobs to settle");
  assert.deepEqual(doomed.map((j) => j.outcome), [EXITED, EXITED, EXITED]);
  // A job of the survivor taking a message round trip: the dead worker's failure did not touch it.
  assert.ok(pool.pids.includes(survivor));
  assert.equal(pool.pending, 3);
  assert.deepEqual(jobs.filter((j) => j.pid === survivor).map((j) => j.outcome), ['pending', 'pending', 'pending']);
  await pool.terminate();
  assert.deepEqual(jobs.filter((j) => j.pid === survivor).map((j) => j.outcome),
    ['ERR_POOL_TERMINATED', 'ERR_POOL_TERMINATED', 'ERR_POOL_TERMINATED']);
});

test('a worker killed while idle is replaced for the next job', TEST, async (t) => {
  const { pool, log } = openPool(t, { module: crash, maxWorkers: 1 });
  const pid = await pool.call('pid');
  process.kill(pid, 'SIGKILL');
  await waitFor(() => entries(log, 'workerExit').length === 1, 'the exit event');
  assert.deepEqual(pool.pids, []);
  const next = await pool.call('echo', 1);
  assert.deepEqual(next.v, 1);
  assert.notEqual(next.pid, pid);
  assert.deepEqual(entries(log, 'workerExit')[0][1], { pid, code: null, signal: 'SIGKILL', expected: false, reason: 'crash' },
    "a crash is reported with expected: false");
});

test('a worker that breaks the protocol: protocolError, the worker is killed, its job fails', TEST, async (t) => {
  const { pool, log } = openPool(t, { module: crash, maxWorkers: 1 });
  const pid = await pool.call('pid');
  const err = await rejectsWith(pool.call('garbage'), EXITED);
  assert.equal(err.pid, pid);
  assert.match(err.message, /protocol/);
  const pe = entries(log, 'protocolError');
  assert.equal(pe.length, 1);
  assert.equal(pe[0][1].pid, pid);
  assert.equal(typeof pe[0][1].message, 'string');
  assert.notEqual(await pool.call('pid'), pid);
  await waitFor(() => entries(log, 'workerExit').length === 1, 'the exit event');
  assert.equal(entries(log, 'workerExit')[0][1].pid, pid);
  // The pool killed it for breaking the protocol: not a crash.
  assert.equal(entries(log, 'workerExit')[0][1].expected, true);
  assert.equal(entries(log, 'workerExit')[0][1].reason, 'protocol');
});

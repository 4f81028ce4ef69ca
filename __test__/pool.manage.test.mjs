// Pool management with real worker processes: warm minimum, growth to maxWorkers and shrinking
// after idleTimeout, spawnDelay, recycling (maxJobsPerWorker, maxRss, retire() from the worker),
// ncpu(), CPU affinity, and stats(). Assertions are about order and counts, never speed.
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import test from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';
import { TEST, entries, errorOf, isGone, openPool, waitFor } from './pool-helpers.mjs';

const require = createRequire(import.meta.url);
const comrade = require('../index.js');

const here = path.dirname(fileURLToPath(import.meta.url));
const work = path.join(here, 'fixtures', 'manage', 'work.js');
const MB = 1024 * 1024;

const exits = (log) => entries(log, 'workerExit').map((e) => e[1]);
const exitOf = (log, pid) => exits(log).find((e) => e.pid === pid);

test('minWorkers start at once, before any job, and stay through idleTimeout', TEST, async (t) => {
  const { pool, log } = openPool(t, { module: work, minWorkers: 2, maxWorkers: 4, idleTimeout: 100 });
  // Spawned in the constructor: no job, no tick needed.
  assert.equal(pool.pids.length, 2);
  assert.equal(pool.minWorkers, 2);
  assert.equal(pool.stats().workers.length, 2);
  const pids = [...pool.pids].sort();
  await waitFor(() => entries(log, 'workerSpawn').length === 2, 'two workerSpawn events');
  assert.deepEqual(entries(log, 'workerSpawn').map((e) => e[1]).sort(), pids);
  // Idle far longer than idleTimeout: the minimum is never stopped.
  await delay(600);
  assert.deepEqual([...pool.pids].sort(), pids);
  assert.deepEqual(exits(log), []);
  // Both serve without any new spawn.
  const r = await Promise.all([pool.call('slow', 100, 'a'), pool.call('slow', 100, 'b')]);
  assert.deepEqual(r.map((x) => x.pid).sort(), pids);
  assert.equal(entries(log, 'workerSpawn').length, 2);
});

test('the pool grows to maxWorkers under load and shrinks back to minWorkers after idleTimeout', TEST, async (t) => {
  const { pool, log, spawned } = openPool(t, { module: work, minWorkers: 1, maxWorkers: 3, idleTimeout: 300 });
  assert.equal(pool.pids.length, 1);
  const results = await Promise.all(Array.from({ length: 12 }, (_, i) => pool.call('slow', 150, i)));
  assert.deepEqual(results.map((r) => r.v), Array.from({ length: 12 }, (_, i) => i));
  const used = new Set(results.map((r) => r.pid));
  assert.equal(used.size, 3, 'the jobs ran on three workers');
  assert.equal(spawned.length, 3, 'never more than maxWorkers spawned');
  assert.deepEqual([...used].sort(), [...spawned].sort());

  await waitFor(() => pool.pids.length === 1, 'the pool to shrink to minWorkers', 15000);
  await waitFor(() => exits(log).length === 2, 'two workerExit events');
  const left = pool.pids[0];
  assert.ok(spawned.includes(left));
  for (const e of exits(log)) {
    assert.notEqual(e.pid, left);
    assert.equal(e.expected, true, `an idle stop is expected: ${JSON.stringify(e)}`);
  }
  // It stays at the minimum, and the survivor takes the next job without a new spawn.
  await delay(500);
  assert.deepEqual(pool.pids, [left]);
  assert.equal((await pool.call('slow', 1, 'again')).pid, left);
  assert.equal(spawned.length, 3);
});

test('spawnDelay: the pool grows one worker at a time', TEST, async (t) => {
  const { pool, spawned } = openPool(t, { module: work, maxWorkers: 3, spawnDelay: 300 });
  assert.equal(pool.pids.length, 0, 'no minimum: nothing before work');
  const jobs = Array.from({ length: 9 }, (_, i) => pool.call('slow', 400, i));
  await null; // the submissions reach the engine in a microtask
  // The first worker starts at once; the next ones are held back by spawnDelay.
  assert.equal(pool.pids.length, 1, 'one worker right after the first spawn');
  const seen = [pool.pids.length];
  await waitFor(() => {
    const n = pool.pids.length;
    if (n !== seen.at(-1)) seen.push(n);
    return n === 3;
  }, 'the pool to reach maxWorkers', 15000);
  for (let i = 1; i < seen.length; i++) {
    assert.ok(seen[i] > seen[i - 1], `the worker count only grows: ${seen.join(' -> ')}`);
  }
  const results = await Promise.all(jobs);
  assert.deepEqual(results.map((r) => r.v), Array.from({ length: 9 }, (_, i) => i));
  assert.equal(results[0].pid, spawned[0], 'the first job runs on the first worker');
  assert.equal(spawned.length, 3);
});

test('spawnDelay does not hold back minWorkers', TEST, async (t) => {
  const { pool } = openPool(t, { module: work, minWorkers: 2, maxWorkers: 3, spawnDelay: 300 });
  assert.equal(pool.pids.length, 2);
  const jobs = Array.from({ length: 6 }, (_, i) => pool.call('slow', 300, i));
  await waitFor(() => pool.pids.length === 3, 'the pool to reach maxWorkers', 15000);
  assert.deepEqual((await Promise.all(jobs)).map((r) => r.v), [0, 1, 2, 3, 4, 5]);
});

test('maxJobsPerWorker: a worker is replaced after N jobs (one at a time)', TEST, async (t) => {
  const { pool, log, spawned } = openPool(t, { module: work, maxWorkers: 1, maxJobsPerWorker: 3 });
  const pids = [];
  for (let i = 0; i < 9; i++) pids.push((await pool.call('slow', 1, i)).pid);
  const [a, b, c] = [pids[0], pids[3], pids[6]];
  assert.deepEqual(pids, [a, a, a, b, b, b, c, c, c]);
  assert.equal(new Set([a, b, c]).size, 3);
  assert.deepEqual(spawned, [a, b, c]);
  // The third one has done its 3 jobs too: it is stopped as well, without a successor yet.
  await waitFor(() => [a, b, c].every((p) => exitOf(log, p)), 'the recycled workers to exit');
  for (const p of [a, b, c]) assert.equal(exitOf(log, p).expected, true);
  assert.ok([a, b, c].every(isGone));
  assert.deepEqual(pool.pids, []);
  assert.equal(spawned.length, 3);
  const s = pool.stats();
  assert.equal(s.completed, 9);
  assert.equal(s.failed, 0);
});

test('maxJobsPerWorker: jobs in flight on a recycled worker finish there', TEST, async (t) => {
  const { pool, log, spawned } = openPool(t, { module: work, maxWorkers: 2, concurrency: 2, maxJobsPerWorker: 3 });
  const results = await Promise.all(Array.from({ length: 24 }, (_, i) => pool.call('slow', 20 + (i % 3) * 20, i)));
  assert.deepEqual(results.map((r) => r.v), Array.from({ length: 24 }, (_, i) => i), 'every job resolved');
  const perPid = new Map();
  for (const r of results) perPid.set(r.pid, (perPid.get(r.pid) || 0) + 1);
  for (const [pid, n] of perPid) {
    // N jobs, plus at most concurrency - 1 already in flight when the Nth completed.
    assert.ok(n <= 3 + 1, `worker ${pid} ran ${n} jobs`);
  }
  assert.ok(perPid.size >= 6, `24 jobs need at least 6 workers of 4 jobs, used ${perPid.size}`);
  assert.deepEqual([...perPid.keys()].every((p) => spawned.includes(p)), true);
  // Every worker that left did so on purpose, not by a crash, and no job failed.
  await waitFor(() => exits(log).length >= perPid.size - 2, 'recycled workers to exit');
  for (const e of exits(log)) assert.equal(e.expected, true, JSON.stringify(e));
  const s = pool.stats();
  assert.equal(s.completed, 24);
  assert.equal(s.failed, 0);
  assert.equal(s.errored, 0);

  // Deterministically: a long job still in flight when its worker reaches the limit finishes
  // on that worker (not retried, not failed), and the worker then exits on purpose.
  const one = openPool(t, { module: work, maxWorkers: 1, concurrency: 2, maxJobsPerWorker: 1 });
  const long = one.pool.call('slow', 400, 'long');
  const short = await one.pool.call('slow', 1, 'short');
  const l = await long;
  assert.equal(l.v, 'long');
  assert.equal(l.pid, short.pid, 'the in-flight job finished on the retiring worker');
  await waitFor(() => exitOf(one.log, short.pid), 'the recycled worker to exit');
  assert.equal(exitOf(one.log, short.pid).expected, true);
  const s1 = one.pool.stats();
  assert.deepEqual([s1.completed, s1.failed, s1.retried], [2, 0, 0]);
});

test('maxRss: a worker holding more memory is retired, then replaced', TEST, async (t) => {
  const { pool, log } = openPool(t, { module: work, maxWorkers: 1, maxRss: 100 * MB });
  const small = await pool.call('pid');
  const hog = await pool.call('hog', 200);
  assert.equal(hog.pid, small, 'the same worker');
  assert.ok(hog.rss > 200 * MB, `the worker holds ${hog.rss} bytes`);
  await waitFor(() => exitOf(log, hog.pid), 'the hog to be retired and exit', 15000);
  const kinds = log.filter((e) => (e[0] === 'workerRetire' && e[1] === hog.pid) ||
    (e[0] === 'workerExit' && e[1].pid === hog.pid)).map((e) => e[0]);
  assert.deepEqual(kinds, ['workerRetire', 'workerExit'], 'retired, then exited');
  assert.equal(exitOf(log, hog.pid).expected, true);
  const next = await pool.call('pid');
  assert.notEqual(next, hog.pid, 'later jobs run on a new worker');
  // A worker under the limit is left alone.
  await delay(1500);
  assert.deepEqual(pool.pids, [next]);
  assert.equal(entries(log, 'workerRetire').length, 1);
});

test('retire() from inside the worker: its jobs finish, then it exits and is replaced', TEST, async (t) => {
  const { pool, log } = openPool(t, { module: work, maxWorkers: 1, concurrency: 2 });
  const a = await pool.call('pid');
  const slow = pool.call('slow', 400, 'slow');
  const retiring = await pool.call('retireMe', 'r');
  assert.deepEqual(retiring, { v: 'r', pid: a });
  // Submitted after the retire: must not go to the retiring worker.
  const later = pool.call('pid');
  assert.deepEqual(await slow, { v: 'slow', pid: a }, 'the job in flight finished on the retiring worker');
  const b = await later;
  assert.notEqual(b, a);
  await waitFor(() => exitOf(log, a), 'the retired worker to exit');
  const order = log.filter((e) => (e[0] === 'workerRetire' && e[1] === a) ||
    (e[0] === 'workerExit' && e[1].pid === a) || (e[0] === 'workerSpawn' && e[1] === b)).map((e) => e[0]);
  assert.deepEqual(order, ['workerRetire', 'workerExit', 'workerSpawn'],
    'with maxWorkers 1 the replacement starts after the retired worker is gone');
  assert.equal(exitOf(log, a).expected, true);
  assert.equal(pool.stats().failed, 0);
});

test('ncpu() reports physical cores and logical CPUs', TEST, () => {
  const n = comrade.ncpu();
  assert.deepEqual(Object.keys(n).sort(), ['logical', 'physical']);
  assert.ok(Number.isInteger(n.physical) && n.physical >= 1, JSON.stringify(n));
  assert.ok(Number.isInteger(n.logical) && n.logical >= 1, JSON.stringify(n));
  assert.ok(n.physical <= n.logical, JSON.stringify(n));
  assert.ok(n.logical <= os.cpus().length, `${JSON.stringify(n)} vs ${os.cpus().length} CPUs`);
});

/** Parses a kernel CPU list such as "0-3,6". */
function cpuList(text) {
  const cpus = [];
  for (const part of text.trim().split(',')) {
    const [lo, hi = lo] = part.split('-').map(Number);
    for (let c = lo; c <= hi; c++) cpus.push(c);
  }
  return cpus;
}

const allowedList = (pid) =>
  /^Cpus_allowed_list:\s*(.*)$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))[1].trim();

test('affinity: each worker is pinned to its own allowed CPU', TEST, async (t) => {
  const allowed = cpuList(allowedList('self'));
  if (allowed.length < 2) {
    t.skip(`needs 2 CPUs, this process may use ${allowed.length}`);
    return;
  }
  const n = Math.min(allowed.length, 4);
  const { pool, log } = openPool(t, { module: work, minWorkers: n, maxWorkers: n, affinity: true });
  const check = () => {
    const ws = pool.stats().workers;
    assert.equal(ws.length, n);
    const cpus = ws.map((w) => w.cpu);
    assert.equal(new Set(cpus).size, n, `distinct CPUs: ${cpus}`);
    for (const w of ws) {
      assert.ok(Number.isInteger(w.cpu) && allowed.includes(w.cpu), `cpu ${w.cpu} of ${allowed}`);
      assert.equal(allowedList(w.pid), String(w.cpu), `worker ${w.pid} is pinned to ${w.cpu}`);
    }
    return ws;
  };
  const before = check();
  // The pinned workers run jobs.
  const r = await Promise.all(Array.from({ length: n * 2 }, (_, i) => pool.call('slow', 50, i)));
  assert.deepEqual(r.map((x) => x.v), Array.from({ length: n * 2 }, (_, i) => i));
  // A replacement takes the CPU its predecessor left.
  const victim = before[before.length - 1];
  process.kill(victim.pid, 'SIGKILL');
  await waitFor(() => exitOf(log, victim.pid) && pool.pids.length === n && !pool.pids.includes(victim.pid),
    'a replacement for the killed worker');
  const after = check();
  const fresh = after.find((w) => !before.some((b) => b.pid === w.pid));
  assert.equal(fresh.cpu, victim.cpu);
});

test('without affinity, workers are not pinned', TEST, async (t) => {
  const { pool } = openPool(t, { module: work, minWorkers: 1, maxWorkers: 1 });
  const [w] = pool.stats().workers;
  assert.equal(w.cpu, null);
  assert.equal(allowedList(w.pid), allowedList('self'));
});

// A process's nice value, field 19 of /proc/PID/stat (after the parenthesised command name).
const niceOf = (pid) =>
  Number(readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /s, '').split(' ')[16]);

test('niceIncrement: workers, their replacements and their threads run at a lower priority', TEST, async (t) => {
  const ours = niceOf('self');
  const want = Math.min(ours + 7, 19);
  const { pool, log } = openPool(t, { module: work, minWorkers: 2, maxWorkers: 2, niceIncrement: 7 });
  const r = await Promise.all([0, 1, 2, 3].map((i) => pool.call('slow', 10, i)));
  assert.deepEqual(r.map((x) => x.v), [0, 1, 2, 3]);
  const threads = (pid) => readdirSync(`/proc/${pid}/task`);
  await waitFor(() => pool.pids.length === 2 && pool.pids.every((pid) => threads(pid).length > 1),
    'both workers running with their threads');
  for (const pid of pool.pids) {
    assert.equal(niceOf(pid), want, `worker ${pid}`);
    // Node's own threads, started after exec, inherit it.
    for (const tid of threads(pid)) {
      let nice;
      try {
        nice = niceOf(`${pid}/task/${tid}`);
      } catch (e) {
        if (e.code === 'ENOENT') continue; // a thread that just ended
        throw e;
      }
      assert.equal(nice, want, `thread ${tid} of worker ${pid}`);
    }
  }
  const victim = pool.pids[0];
  process.kill(victim, 'SIGKILL');
  await waitFor(() => exitOf(log, victim) && pool.pids.length === 2 && !pool.pids.includes(victim),
    'a replacement for the killed worker');
  for (const pid of pool.pids) assert.equal(niceOf(pid), want, `worker ${pid} after a replacement`);
  assert.equal(niceOf('self'), ours, 'the parent is unchanged');
});

test('without niceIncrement, workers keep the parent\'s priority', TEST, async (t) => {
  const { pool } = openPool(t, { module: work, minWorkers: 1, maxWorkers: 1 });
  await waitFor(() => pool.pids.length === 1, 'a worker');
  assert.equal(niceOf(pool.pids[0]), niceOf('self'));
});

test('stats() follows the jobs: queue, states, exact totals, times, jobsDone', TEST, async (t) => {
  const { pool } = openPool(t, { module: work, maxWorkers: 1 });
  const empty = pool.stats();
  const zero = {
    workers: [], queued: 0, inFlight: 0, pending: 0, completed: 0, errored: 0, failed: 0,
    retried: 0, rejected: 0, throughput: 0, waitTime: null, runTime: null,
  };
  for (const [key, value] of Object.entries(zero)) assert.deepEqual(empty[key], value, key);

  // Three slow jobs on one worker: one runs, two wait.
  const slow = [0, 1, 2].map((i) => pool.call('slow', 300, i));
  await waitFor(() => pool.stats().workers.some((w) => w.state === 'busy'), 'a busy worker');
  let s = pool.stats();
  assert.equal(s.queued, 2);
  assert.equal(s.inFlight, 1);
  assert.equal(s.pending, 3);
  assert.equal(s.workers.length, 1);
  assert.equal(s.workers[0].jobsInFlight, 1);
  assert.equal(s.workers[0].jobsDone, 0);
  assert.ok(s.workers[0].rss > 0, 'rss is read from /proc');
  await Promise.all(slow);
  s = pool.stats();
  assert.equal(s.queued, 0);
  assert.equal(s.inFlight, 0);
  assert.equal(s.pending, 0);
  assert.equal(s.completed, 3);
  assert.equal(s.workers[0].state, 'idle');
  assert.equal(s.workers[0].jobsDone, 3);
  assert.equal(s.workers[0].jobsInFlight, 0);

  // Workers that crash while holding a job: failed (their worker, and its jobsDone, is gone).
  for (let i = 0; i < 2; i++) {
    const err = await errorOf(pool.call('killSelf'));
    assert.equal(err.code, 'ERR_WORKER_EXITED');
  }
  // A known mix on the replacement.
  const mix = [
    ...Array.from({ length: 5 }, (_, i) => pool.call('echo', i)),
    ...Array.from({ length: 3 }, (_, i) => pool.call('fail', `no ${i}`)),
  ];
  const settled = await Promise.allSettled(mix);
  assert.deepEqual(settled.map((x) => x.status), [...Array(5).fill('fulfilled'), ...Array(3).fill('rejected')]);
  assert.ok(settled.slice(5).every((x) => x.reason.code === 'E_FIXTURE'));
  // Refused before reaching a worker.
  assert.equal((await errorOf(pool.call('echo', 1n))).code, 'ERR_UNSERIALIZABLE');

  s = pool.stats();
  assert.equal(s.completed, 3 + 5);
  assert.equal(s.errored, 3);
  assert.equal(s.failed, 2);
  assert.equal(s.retried, 0);
  assert.equal(s.rejected, 1);
  assert.equal(s.pending, 0);
  assert.equal(s.workers.length, 1);
  const done = s.workers.reduce((sum, w) => sum + w.jobsDone, 0);
  assert.equal(done, 5 + 3, 'the live worker ran the mix');
  for (const key of ['waitTime', 'runTime']) {
    const p = s[key];
    assert.notEqual(p, null, key);
    assert.ok(p.samples >= 1 && p.samples <= 3 + 2 + 8, `${key}.samples = ${p.samples}`);
    assert.ok(p.p50 >= 0 && p.p50 <= p.p90 && p.p90 <= p.p99, `${key}: ${JSON.stringify(p)}`);
  }
  assert.ok(s.runTime.p99 >= 250, `the 300 ms jobs show in runTime: ${JSON.stringify(s.runTime)}`);
  assert.ok(typeof s.throughput === 'number' && s.throughput >= 0);
});

test('stats(): jobsDone of the live workers sums to completed + errored', TEST, async (t) => {
  const { pool } = openPool(t, { module: work, maxWorkers: 3, concurrency: 2 });
  const jobs = [];
  for (let i = 0; i < 60; i++) {
    jobs.push(i % 4 === 3 ? pool.call('fail', `x${i}`) : pool.call('slow', i % 5, i));
  }
  const settled = await Promise.allSettled(jobs);
  assert.equal(settled.filter((x) => x.status === 'rejected').length, 15);
  const s = pool.stats();
  assert.equal(s.completed, 45);
  assert.equal(s.errored, 15);
  assert.equal(s.failed, 0);
  assert.equal(s.workers.reduce((sum, w) => sum + w.jobsDone, 0), s.completed + s.errored);
  assert.ok(s.workers.every((w) => w.state === 'idle' && w.jobsInFlight === 0));
});

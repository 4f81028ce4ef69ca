// Chaos: thousands of quick jobs over 4 workers (concurrency 2) while a killer SIGKILLs live
// workers at random moments (while they start, while they hold jobs, between replies). With
// enough retries every job resolves with its own result; without retries every job settles
// exactly once, and the pool still serves once the killing stops.
//
// The killer ticks every 5-20 ms and kills at most one worker per tick. A Node worker takes
// hundreds of milliseconds to start on a loaded machine, so killing a random worker on every
// tick would starve the pool; instead each worker gets a random time of death: for one in four
// it falls within its first 150 ms (usually before it answers anything), for the others within
// 250 ms of its first answer. The killing runs for the whole wave, capped at CHAOS_MS so the test
// stays bounded whatever the machine's speed.
import assert from 'node:assert/strict';
import path from 'node:path';
import test from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { entries, isGone, openPool, waitFor, within } from './pool-helpers.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const work = path.join(here, 'fixtures', 'manage', 'work.js');

const JOBS = 4000;
const CHAOS_MS = 7000;
const SPIN = 2000; // rounds of arithmetic per job
const OPTS = { timeout: 60000 };

/** Starts the killer on `pool`. */
function startKiller(pool) {
  const plan = new Map(); // pid -> time of death, or null until its first answer
  const killed = new Set();
  let ticks = 0;
  let stopped = false;
  const deathAfterAnswer = () => Date.now() + Math.random() * 250;
  const loop = (async () => {
    const end = Date.now() + CHAOS_MS;
    while (!stopped && Date.now() < end) {
      await delay(5 + Math.random() * 15);
      ticks++;
      const now = Date.now();
      const pids = pool.pids;
      for (const pid of pids) {
        if (!plan.has(pid)) plan.set(pid, Math.random() < 0.25 ? now + Math.random() * 150 : null);
      }
      const due = pids.filter((p) => !killed.has(p) && plan.get(p) !== null && plan.get(p) <= now);
      if (due.length === 0) continue;
      const victim = due[Math.floor(Math.random() * due.length)];
      try {
        process.kill(victim, 'SIGKILL');
        killed.add(victim);
      } catch {
        // already gone
      }
    }
    stopped = true;
  })();
  return {
    killed,
    get ticks() {
      return ticks;
    },
    /** A job answered on `pid`. */
    answered(pid) {
      if (plan.get(pid) === null || !plan.has(pid)) plan.set(pid, deathAfterAnswer());
    },
    async stop() {
      stopped = true;
      await loop;
    },
  };
}

/**
 * Checks what the pool reported about its workers once the killing stopped: every worker that
 * exited was one the killer killed, and each of those exited once.
 */
async function checkExits(log, killer, livePids) {
  const exits = () => entries(log, 'workerExit').map((e) => e[1]);
  await waitFor(() => [...killer.killed].every((p) => exits().some((e) => e.pid === p)),
    'a workerExit for every killed worker', 20000);
  const spawned = entries(log, 'workerSpawn').map((e) => e[1]);
  const byPid = new Map();
  for (const e of exits()) byPid.set(e.pid, [...(byPid.get(e.pid) || []), e]);
  for (const [pid, list] of byPid) {
    assert.equal(list.length, 1, `worker ${pid} exited ${list.length} times`);
    assert.ok(killer.killed.has(pid), `worker ${pid} exited without being killed: ${JSON.stringify(list[0])}`);
  }
  assert.equal(spawned.length, killer.killed.size + livePids.length,
    'every worker spawned was killed or still lives');
  assert.deepEqual(entries(log, 'protocolError'), []);
}

/** Each killed worker's workerExit says SIGKILL, and that the exit was not expected (a crash). */
function checkCrashReports(log, killer) {
  const exits = entries(log, 'workerExit').map((e) => e[1]);
  for (const pid of killer.killed) {
    assert.deepEqual(exits.find((e) => e.pid === pid), { pid, code: null, signal: 'SIGKILL', expected: false, reason: 'crash' });
  }
}

test('chaos with retries: every job resolves with its own result', OPTS, async (t) => {
  const { pool, log } = openPool(t, { module: work, maxWorkers: 4, concurrency: 2, retries: 100 });
  const killer = startKiller(pool);
  t.after(() => killer.stop());
  const settles = new Uint8Array(JOBS);
  const wrong = [];
  const failures = [];
  const jobs = [];
  for (let i = 0; i < JOBS; i++) {
    jobs.push(pool.call('work', i, SPIN).then((r) => {
      settles[i]++;
      killer.answered(r.pid);
      if (r.v !== i) wrong.push([i, r]);
    }, (e) => {
      settles[i]++;
      failures.push([i, e.code, e.message]);
    }));
  }
  await Promise.all(jobs);
  await killer.stop();
  t.diagnostic(`${killer.killed.size} workers killed in ${killer.ticks} ticks; ${pool.stats().retried} retries`);
  assert.deepEqual(failures.slice(0, 5), [], `${failures.length} jobs failed`);
  assert.deepEqual(wrong.slice(0, 5), [], `${wrong.length} wrong results`);
  await delay(100);
  assert.ok(settles.every((n) => n === 1), 'every job settled exactly once');
  assert.ok(killer.killed.size > 0, 'the killer killed workers');
  const s = pool.stats();
  assert.equal(s.completed, JOBS);
  assert.equal(s.failed, 0);
  assert.equal(s.pending, 0);
  assert.equal(s.queued + s.inFlight, 0);

  // The pool serves normally afterwards.
  const after = await Promise.all(Array.from({ length: 100 }, (_, i) => pool.call('work', JOBS + i, SPIN)));
  assert.deepEqual(after.map((r) => r.v), Array.from({ length: 100 }, (_, i) => JOBS + i));
  await checkExits(log, killer, pool.pids);
  const live = pool.pids;
  assert.equal(await within(pool.close().then(() => 'closed'), 20000), 'closed');
  assert.ok(live.every(isGone));
  checkCrashReports(log, killer);
});

test('chaos without retries: every job settles exactly once; the pool serves after', OPTS, async (t) => {
  const { pool, log } = openPool(t, { module: work, maxWorkers: 4, concurrency: 2 });
  const killer = startKiller(pool);
  t.after(() => killer.stop());
  const settles = new Uint8Array(JOBS);
  let resolved = 0;
  const rejected = [];
  const wrong = [];
  const jobs = [];
  for (let i = 0; i < JOBS; i++) {
    jobs.push(pool.call('work', i, SPIN).then((r) => {
      settles[i]++;
      resolved++;
      killer.answered(r.pid);
      if (r.v !== i) wrong.push([i, r]);
    }, (e) => {
      settles[i]++;
      rejected.push(e);
    }));
  }
  await Promise.all(jobs);
  await killer.stop();
  t.diagnostic(`${killer.killed.size} workers killed in ${killer.ticks} ticks; ${rejected.length} jobs lost`);
  await delay(100);
  assert.equal(resolved + rejected.length, JOBS);
  assert.ok(settles.every((n) => n === 1), 'every job settled exactly once');
  assert.deepEqual(wrong.slice(0, 5), [], `${wrong.length} wrong results`);
  for (const e of rejected) {
    assert.equal(e.code, 'ERR_WORKER_EXITED', e.message);
    assert.equal(e.signal, 'SIGKILL', e.message);
    assert.ok(killer.killed.has(e.pid), `job lost on worker ${e.pid}, which the killer did not kill`);
  }
  assert.ok(killer.killed.size > 0, 'the killer killed workers');
  const s = pool.stats();
  assert.equal(s.completed, resolved);
  assert.equal(s.failed, rejected.length);
  assert.equal(s.retried, 0);
  assert.equal(s.pending, 0);
  assert.equal(s.queued + s.inFlight, 0);

  // The killer has stopped: 100 more jobs, all correct.
  const after = await Promise.all(Array.from({ length: 100 }, (_, i) => pool.call('work', JOBS + i, SPIN)));
  assert.deepEqual(after.map((r) => r.v), Array.from({ length: 100 }, (_, i) => JOBS + i));
  assert.equal(pool.stats().completed, resolved + 100);
  await checkExits(log, killer, pool.pids);
  const live = pool.pids;
  assert.equal(await within(pool.close().then(() => 'closed'), 20000), 'closed');
  assert.ok(live.every(isGone));
  checkCrashReports(log, killer);
});

// exit(cb): kills every worker and calls cb(null) once all have exited (on a
// later tick when there are none). Every accepted job is called back exactly
// once: in flight → "dies with code: null", still queued → "cannot run work:
// compute cluster exited". enqueue() after exit() is refused asynchronously.
import assert from 'node:assert/strict';
import test from 'node:test';
import { Harness, PASSING, SPAWNED, TEST, fixture, isGone, waitFor } from './cc-helpers.mjs';

const mortal = fixture('mortal.js');
const EXITED = 'cannot run work: compute cluster exited';
const EXITING = 'cannot enqueue work: compute cluster is exiting';

/** Calls cc.exit(cb) directly and records what happened around cb. */
function exitRecorded(h) {
  const rec = { calls: [] };
  let inside = true;
  rec.done = new Promise((resolve) => {
    rec.returned = h.cc.exit((...args) => {
      rec.calls.push({ args, sync: inside, gone: h.spawnedPids.map(isGone), log: h.log.length });
      resolve(rec);
    });
  });
  inside = false;
  return rec;
}

const tick = () => new Promise((resolve) => setTimeout(resolve, 50));

test('exit() with no workers calls back with null, asynchronously, once', TEST, async (t) => {
  const h = new Harness(t, { module: mortal, max_processes: 2 });
  const rec = exitRecorded(h);
  assert.equal(rec.returned, h.cc, 'exit returns the cluster');
  assert.equal(rec.calls.length, 0, 'cb must not run inside exit()');
  await rec.done;
  await tick();
  assert.deepEqual(rec.calls.map((c) => c.args), [[null]]);
  assert.deepEqual(h.spawnedPids, []);
  assert.deepEqual(h.errors, []);
});

test('exit() with idle workers stops them all before calling back', TEST, async (t) => {
  const h = new Harness(t, { module: mortal, max_processes: 3 });
  const jobs = [1, 2, 3].map((v) => h.job({ op: 'echo', v }));
  await Promise.all(jobs.map((j) => j.done));
  const pids = h.spawnedPids;
  assert.equal(pids.length, 3);
  assert.ok(pids.every((pid) => !isGone(pid)), 'idle workers are alive before exit()');

  const rec = exitRecorded(h);
  assert.equal(rec.calls.length, 0);
  await rec.done;
  await tick();
  assert.equal(rec.calls.length, 1);
  assert.deepEqual(rec.calls[0].args, [null]);
  assert.deepEqual(rec.calls[0].gone, [true, true, true], 'every worker has exited when cb runs');
  assert.ok(h.infos.includes('exit called, shutting down 3 child processes'));
  for (const pid of pids) {
    assert.ok(
      h.infos.some((m) => new RegExp(`^compute process \\(${pid}\\) exits with code (null|\\d+)$`).test(m)),
      `no exit info for ${pid}`,
    );
  }
  assert.deepEqual(h.errors, [], "no 'error' while exiting");
  assert.ok(jobs.every((j) => j.calls.length === 1), 'completed jobs are not called back again');
});

test('exit() with jobs in flight and queued calls every callback once, then cb(null)', TEST, async (t) => {
  const h = new Harness(t, { module: mortal, max_processes: 2 });
  const jobs = Array.from({ length: 5 }, (_, i) => h.job({ op: 'hang' }, i));
  await waitFor(() => h.messages('debug', PASSING).length === 2, 'two jobs in flight');
  const pids = h.spawnedPids;
  assert.equal(pids.length, 2);

  const rec = exitRecorded(h);
  await rec.done;
  await tick();
  assert.equal(rec.calls.length, 1, 'exit cb runs once');
  assert.deepEqual(rec.calls[0].args, [null]);
  assert.deepEqual(rec.calls[0].gone, [true, true], 'every worker has exited when cb runs');

  for (const j of jobs) assert.equal(j.calls.length, 1, `job ${j.tag} was called back ${j.calls.length} times`);
  const inFlight = jobs.slice(0, 2).map((j) => j.err).sort();
  assert.deepEqual(inFlight, pids.map((pid) => `compute process (${pid}) dies with code: null`).sort());
  assert.deepEqual(jobs.slice(2).map((j) => j.err), [EXITED, EXITED, EXITED]);
  const cbsAt = h.log.map((e, i) => (e.type === 'cb' ? i : -1)).filter((i) => i >= 0);
  assert.ok(Math.max(...cbsAt) < rec.calls[0].log, 'every job is called back before exit cb');
  assert.ok(h.infos.includes('exit called, shutting down 2 child processes'));
  assert.deepEqual(h.errors, [], "no 'error' while exiting");
});

test('enqueue() after exit() is refused asynchronously and spawns nothing', TEST, async (t) => {
  const h = new Harness(t, { module: mortal, max_processes: 2 });
  h.cc.exit();
  const late = h.job({ op: 'echo', v: 'late' });
  assert.equal(late.returned, h.cc);
  assert.equal(late.calls.length, 0, 'refused asynchronously');
  await late.done;
  await tick();
  assert.deepEqual(late.calls.map((c) => c.args), [[EXITING]]);
  assert.deepEqual(h.messages('info', SPAWNED), []);
});

test('enqueue() while exiting and after exit completed is refused', TEST, async (t) => {
  const h = new Harness(t, { module: mortal, max_processes: 2 });
  await Promise.all([h.run({ op: 'echo', v: 1 }), h.run({ op: 'echo', v: 2 })]);
  assert.equal(h.spawnedPids.length, 2);

  const rec = exitRecorded(h);
  const during = h.job({ op: 'echo', v: 'during' });
  assert.equal(during.calls.length, 0);
  await rec.done;
  const after = h.job({ op: 'echo', v: 'after' });
  assert.equal(after.calls.length, 0);
  await Promise.all([during.done, after.done]);
  await tick();
  assert.deepEqual(during.calls.map((c) => c.args), [[EXITING]]);
  assert.deepEqual(after.calls.map((c) => c.args), [[EXITING]]);
  assert.equal(h.spawnedPids.length, 2, 'no worker is spawned after exit()');
  assert.ok(h.spawnedPids.every(isGone));
  assert.deepEqual(h.errors, []);
});

test('exit() amid a stream of quick jobs: each job ends once, with its reply or an exit error', TEST, async (t) => {
  const h = new Harness(t, { module: fixture('echo-slow-after.js'), max_processes: 3, max_backlog: -1 });
  const uncaught = [];
  const onUncaught = (e) => uncaught.push(e);
  process.on('uncaughtException', onUncaught);
  t.after(() => process.off('uncaughtException', onUncaught));

  const jobs = Array.from({ length: 300 }, (_, i) => h.job({ i }, i));
  // Let some jobs complete, so exit() lands while replies are arriving.
  await jobs[20].done;
  const rec = exitRecorded(h);
  await rec.done;
  await tick();
  assert.deepEqual(rec.calls.map((c) => c.args), [[null]]);
  const dies = /^compute process \(\d+\) dies with code: null$/;
  for (const j of jobs) {
    assert.equal(j.calls.length, 1, `job ${j.tag} was called back ${j.calls.length} times`);
    if (j.err === null) assert.deepEqual(j.result, j.args);
    else assert.ok(j.err === EXITED || dies.test(j.err), `job ${j.tag}: unexpected error ${j.err}`);
  }
  assert.equal(jobs[20].err, null);
  assert.ok(jobs.some((j) => j.err === EXITED), 'some jobs were still queued');
  assert.deepEqual(uncaught, []);
  assert.deepEqual(h.errors, []);
});

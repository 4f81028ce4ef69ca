// A worker that dies: the job it held gets "compute process (PID) dies with
// code: CODE", then 'error' and 'info' report it, and the pool keeps serving,
// queued jobs included, with no further enqueue (compute-cluster stalls
// there). A worker's extra reply is dropped with an info, never taken as the
// next job's result.
import assert from 'node:assert/strict';
import test from 'node:test';
import { Harness, PASSING, SPAWNED, TEST, fixture, waitFor } from './cc-helpers.mjs';

const mortal = fixture('mortal.js');

function indexOfEntry(log, pred, what) {
  const i = log.findIndex(pred);
  assert.ok(i >= 0, `missing ${what}`);
  return i;
}

/** Checks the callback → 'error' → 'info' sequence for the death of `pid`. */
function assertDeathReported(h, pid, code, jobTag) {
  const dies = `compute process (${pid}) dies with code: ${code}`;
  const exits = `compute process (${pid}) exits with code ${code}`;
  assert.deepEqual(h.errors, [dies]);
  assert.equal(h.messages('info').filter((m) => m === exits).length, 1, `info '${exits}'`);
  const errorAt = indexOfEntry(h.log, (e) => e.type === 'error' && e.msg === dies, "'error' event");
  const infoAt = indexOfEntry(h.log, (e) => e.type === 'info' && e.msg === exits, 'exit info');
  if (jobTag !== undefined) {
    const cbAt = indexOfEntry(h.log, (e) => e.type === 'cb' && e.tag === jobTag, 'job callback');
    assert.ok(cbAt < errorAt, "the job's callback runs before 'error' is emitted");
  }
  assert.ok(errorAt < infoAt, "'error' is emitted before the exit info");
}

for (const signal of ['SIGTERM', 'SIGKILL']) {
  test(`${signal} to a worker holding a job: its job fails, queued jobs still run`, TEST, async (t) => {
    const h = new Harness(t, { module: mortal, max_processes: 1 });
    const held = h.job({ op: 'hang' }, 'held');
    const queued = [h.job({ op: 'echo', v: 'b' }, 'b'), h.job({ op: 'echo', v: 'c' }, 'c')];
    await waitFor(() => h.messages('debug', PASSING).length === 1, 'the held job to be passed');
    const [pid] = h.spawnedPids;
    assert.equal(h.debugs[0], `passing compute job to process ${pid}`);
    process.kill(pid, signal);

    await held.done;
    assert.deepEqual(held.calls.map((c) => c.args), [[`compute process (${pid}) dies with code: null`]]);
    // No enqueue after the death: the queued jobs must run by themselves.
    await waitFor(() => queued.every((j) => j.calls.length), 'the queued jobs to run after the death');
    for (const j of queued) {
      assert.deepEqual(j.calls.map((c) => c.args[0]), [null]);
      assert.equal(j.result.v, j.tag);
      assert.notEqual(j.result.pid, pid);
    }
    assertDeathReported(h, pid, 'null', 'held');

    const [, replacement] = h.spawnedPids;
    assert.equal(queued[0].result.pid, replacement);
    assert.equal(h.messages('info', SPAWNED)[1], `spawned new worker process (${replacement}) 1/1 processes running`);
    const later = await h.run({ op: 'echo', v: 'later' });
    assert.deepEqual([later.err, later.result], [null, { pid: replacement, v: 'later' }]);
    assert.equal(held.calls.length, 1, 'the failed job is called back once');
  });
}

test('a worker exiting with a code mid-job: the code is reported and queued jobs run', TEST, async (t) => {
  const h = new Harness(t, { module: mortal, max_processes: 1 });
  const dying = h.job({ op: 'exit', code: 3 }, 'dying');
  const queued = h.job({ op: 'echo', v: 'next' }, 'next');
  await dying.done;
  const [pid] = h.spawnedPids;
  assert.equal(dying.err, `compute process (${pid}) dies with code: 3`);
  await waitFor(() => queued.calls.length === 1, 'the queued job to run after the death');
  assert.equal(queued.err, null);
  assert.equal(queued.result.v, 'next');
  assert.notEqual(queued.result.pid, pid);
  assertDeathReported(h, pid, '3', 'dying');
});

test("with several workers, only the dead worker's job fails and the rest complete", TEST, async (t) => {
  const h = new Harness(t, { module: mortal, max_processes: 3, max_backlog: -1 });
  const jobs = [];
  for (let i = 0; i < 12; i++) {
    jobs.push(h.job(i === 4 ? { op: 'exit', code: 9 } : { op: 'echo', v: i }, i));
  }
  await waitFor(() => jobs.every((j) => j.calls.length), 'every job to be called back');
  const failed = jobs.filter((j) => j.err !== null);
  assert.deepEqual(failed.map((j) => j.tag), [4]);
  assert.match(failed[0].err, /^compute process \(\d+\) dies with code: 9$/);
  for (const j of jobs) if (j.tag !== 4) assert.equal(j.result.v, j.tag);
  assert.equal(h.errors.length, 1);
  assert.ok(jobs.every((j) => j.calls.length === 1));
});

test('a worker that dies while idle is reported, and the next job gets a new worker', TEST, async (t) => {
  const h = new Harness(t, { module: mortal, max_processes: 1 });
  const first = await h.run({ op: 'echo', v: 1 });
  const pid = first.result.pid;
  process.kill(pid, 'SIGKILL');
  await waitFor(() => h.errors.length === 1, "the 'error' event");
  await waitFor(() => h.messages('info').includes(`compute process (${pid}) exits with code null`), 'the exit info');
  assertDeathReported(h, pid, 'null');
  const next = await h.run({ op: 'echo', v: 2 });
  assert.equal(next.err, null);
  assert.equal(next.result.v, 2);
  assert.notEqual(next.result.pid, pid);
  assert.equal(first.calls.length, 1, 'a completed job is not called back again');
});

test("a worker's second reply is dropped with an info, never given to the next job", TEST, async (t) => {
  const h = new Harness(t, { module: fixture('double-reply.js'), max_processes: 1 });
  // b waits behind a on the only worker, so a's extra reply arrives when b
  // could be taken for its owner.
  const a = h.job('a');
  const b = h.job('b');
  await Promise.all([a.done, b.done]);
  const [pid] = h.spawnedPids;
  const stray = `compute process (${pid}) sent a message with no job in flight; message dropped`;
  await waitFor(() => h.messages('info').filter((m) => m === stray).length === 2, 'two stray-message infos');
  assert.deepEqual(a.calls.map((c) => c.args), [[null, { v: 'a', n: 1 }]]);
  assert.deepEqual(b.calls.map((c) => c.args), [[null, { v: 'b', n: 1 }]]);

  const c = await h.run('c');
  assert.deepEqual([c.err, c.result], [null, { v: 'c', n: 1 }]);
  await waitFor(() => h.messages('info').filter((m) => m === stray).length === 3, 'a third stray-message info');
  assert.deepEqual(h.errors, [], 'a stray message is not an error');
  assert.equal(h.spawnedPids.length, 1, 'the worker is kept');
});

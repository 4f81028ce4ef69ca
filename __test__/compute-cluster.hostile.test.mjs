// Hostile ComputeCluster workers (issue 15): one job's reply must never become another's, and
// a worker that sends a handle must fail its job clearly instead of hanging it.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import test from 'node:test';
import { Harness, TEST, fixture, waitFor, within } from './cc-helpers.mjs';

const strayText = (pid) => `compute process (${pid}) sent a message with no job in flight; message dropped`;

/**
 * Job A is answered; B is enqueued from A's callback, so the engine writes B to the worker
 * while the worker is still inside A's handler; only then does the worker answer A again,
 * with `dup`. B must get its own reply, and A's duplicate must be dropped as stray.
 */
async function lateDuplicate(t, dup) {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'comrade-cc-late-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const flag = path.join(dir, 'b-sent');
  const h = new Harness(t, { module: fixture('answers-late.js'), max_processes: 1 });
  const b = await new Promise((resolve) => {
    h.cc.enqueue({ job: 'A', flag, dup }, (err, r) => {
      assert.deepEqual([err, r], [null, { job: 'A' }]);
      const rec = h.job({ job: 'B' });
      // B's write happens in the flush of this tick's batch; the flag comes after it.
      setImmediate(() => writeFileSync(flag, ''));
      resolve(rec);
    });
  });
  await b.done;
  const [pid] = h.spawnedPids;
  await waitFor(() => h.messages('info').includes(strayText(pid)), "the duplicate's stray info");
  assert.deepEqual(b.calls.map((c) => c.args), [[null, { job: 'B' }]], "B gets B's reply, once");
  assert.deepEqual(h.errors, []);
  assert.equal(h.spawnedPids.length, 1, 'the worker is kept');
}

test("a duplicate of job A holding a lone surrogate, sent after B was written, is not B's result", TEST,
  (t) => lateDuplicate(t, 'surrogate'));

test("a duplicate of job A nested 200 deep, sent after B was written, is not B's result", TEST,
  (t) => lateDuplicate(t, 'deep'));

test("a plain duplicate of job A, sent after B was written, is not B's result", TEST,
  (t) => lateDuplicate(t, 'plain'));

test('every job is called back once and every extra message is one stray info, whatever the timing', TEST, async (t) => {
  // Each job is answered twice, the second time from a timer: by then the next job may have
  // reached the worker, and that copy is taken for the next job's reply (the documented limit:
  // compute-cluster's messages carry no job ids); the next job's own reply is then stray.
  const h = new Harness(t, { module: fixture('answers-from-timer.js'), max_processes: 1, max_backlog: -1 });
  const jobs = [];
  for (let n = 0; n < 20; n++) jobs.push(h.job({ n, again: (n % 3) * 2 }));
  await Promise.all(jobs.map((j) => j.done));
  const [pid] = h.spawnedPids;
  await waitFor(() => h.messages('info').filter((m) => m === strayText(pid)).length === 20, '20 stray infos');
  for (const j of jobs) {
    assert.equal(j.calls.length, 1, `job ${j.args.n} is called back once`);
    assert.equal(j.err, null);
  }
  assert.deepEqual(h.errors, []);
});

test('a worker that sends a handle fails its job with the dies text and an info, and the pool goes on', TEST, async (t) => {
  const h = new Harness(t, { module: fixture('sends-handle.js'), max_processes: 1 });
  const job = h.job({ handle: true });
  assert.ok(await within(job.done, 10000), 'the job with a handle settles');
  const [pid] = h.spawnedPids;
  assert.equal(job.err, `compute process (${pid}) dies with code: null`);
  assert.ok(
    h.infos.includes(`compute process (${pid}) broke the IPC protocol (sent a handle with process.send, ` +
      'which ComputeCluster cannot pass on); killing it'),
    `infos: ${JSON.stringify(h.infos)}`,
  );
  assert.deepEqual(h.errors, [`compute process (${pid}) dies with code: null`]);
  const next = await h.run({ plain: true });
  assert.deepEqual([next.err, next.result], [null, { plain: true }]);
  assert.equal(job.calls.length, 1);
});

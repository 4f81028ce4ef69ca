// max_request_time: once more than 2 × max_processes jobs have completed, a
// job whose expected completion time, (queued / workers) × avg + avg seconds,
// exceeds max_request_time is refused. These tests assert counts, texts and
// the formula, never speed: each job lasts at least as long as it sleeps.
import assert from 'node:assert/strict';
import test from 'node:test';
import { Harness, TEST, fixture, waitFor } from './cc-helpers.mjs';

const sleep = fixture('sleep.js');
// compute-cluster's own test regex, and an exact one capturing X.
const ORIGINAL_RE = /cannot enqueue work: maximum expected work duration exceeded \(\d.\d+s\)/;
const REFUSED = /^cannot enqueue work: maximum expected work duration exceeded \((.+)s\)$/;
const INFO = /^maximum expected work duration hit hit \(work would take about (.+)s, which is greater than (.+)\)! {2}cannot enqueue!$/;

const settle = () => new Promise((resolve) => setImmediate(resolve));

/** The estimate X of a refusal, checked to be printed the way JS prints numbers. */
function estimateOf(err) {
  assert.match(err, ORIGINAL_RE);
  const m = REFUSED.exec(err);
  assert.ok(m, `unexpected refusal text: ${err}`);
  const x = Number(m[1]);
  assert.equal(String(x), m[1], 'X is formatted as a JS number');
  return x;
}

for (const max of [1, 2]) {
  test(`the estimator stays off until more than 2 × max_processes (${max}) jobs completed`, TEST, async (t) => {
    // A limit no real job can meet: every job is refused once the estimator is on.
    const h = new Harness(t, { module: sleep, max_processes: max, max_backlog: -1, max_request_time: 0.001 });
    for (let i = 0; i <= 2 * max; i++) {
      const { err, result } = await h.run({ ms: 50, tag: i });
      assert.equal(err, null, `job ${i} was refused after ${i} completed jobs`);
      assert.equal(result.tag, i);
      await settle();
    }
    const refused = h.job({ ms: 50, tag: 'refused' });
    assert.equal(refused.calls.length, 0, 'refusals are delivered asynchronously');
    await refused.done;
    assert.equal(refused.calls[0].sync, false);
    assert.equal(refused.result, undefined);
    const x = estimateOf(refused.err);
    // Idle pool, so the estimate is the average itself. Unlike compute-cluster,
    // which dilutes its first sample from 0 (50 ms / (2·max + 1)), the first
    // sample sets the average, and every sample is at least 50 ms.
    assert.ok(x >= 0.045, `estimate ${x}s is below the 50 ms every job takes`);
    await waitFor(() => h.messages('info', INFO).length === 1, 'the refusal info');
    assert.deepEqual(h.messages('info', INFO), [
      `maximum expected work duration hit hit (work would take about ${x}s, which is greater than 0.001)!  cannot enqueue!`,
    ]);
    assert.deepEqual(h.errors, []);
  });
}

test('a burst is refused once (queued / workers) × avg + avg exceeds max_request_time', TEST, async (t) => {
  const h = new Harness(t, { module: sleep, max_processes: 1, max_backlog: -1, max_request_time: 0.5 });
  // Warm up: three 50 ms jobs, one after the other (> 2 × max_processes).
  for (let i = 0; i < 3; i++) {
    const { err } = await h.run({ ms: 50, tag: `warm ${i}` });
    assert.equal(err, null);
    await settle();
  }
  // Burst jobs are long, so none completes (or changes the queue) while we
  // look; exit() fails the accepted ones at cleanup.
  const count = 40;
  const jobs = Array.from({ length: count }, (_, i) => h.job({ ms: 20000, tag: i }, i));
  assert.ok(jobs.every((j) => j.calls.length === 0), 'no callback ran inside enqueue');
  await waitFor(() => jobs[count - 1].calls.length === 1, 'the last job of the burst to be refused');

  const accepted = jobs.filter((j) => j.calls.length === 0).map((j) => j.tag);
  const k = accepted.length;
  // Each accepted job only lengthens the queue, so the refused ones are
  // exactly the tail of the burst, all with the same estimate.
  assert.deepEqual(accepted, Array.from({ length: k }, (_, i) => i));
  const refused = jobs.slice(k);
  assert.ok(refused.length >= 1);
  const estimates = refused.map((j) => {
    assert.equal(j.calls.length, 1);
    assert.equal(j.calls[0].sync, false);
    return estimateOf(j.err);
  });
  const x = estimates[0];
  assert.ok(estimates.every((e) => e === x), `estimates differ: ${estimates}`);
  // One worker: the refused job waits behind k − 1 queued jobs (the first of
  // the burst went straight to the idle worker), so X = k × avg > 0.5, while
  // the last accepted job's estimate, (k − 1) × avg = X × (k − 1) / k, was not.
  assert.ok(x > 0.5, `estimate ${x} should exceed 0.5`);
  assert.ok((x * (k - 1)) / k <= 0.5 + 1e-9, `with ${k} accepted, the last accepted job's estimate exceeded 0.5`);

  await waitFor(() => h.messages('info', INFO).length === refused.length, 'one info per refusal');
  for (const m of h.messages('info', INFO)) {
    const [, ix, limit] = INFO.exec(m);
    assert.equal(ix, String(x));
    assert.equal(limit, '0.5');
  }
  assert.deepEqual(h.errors, []);
});

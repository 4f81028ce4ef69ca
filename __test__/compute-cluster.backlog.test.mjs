// max_backlog: jobs beyond the backlog are refused with compute-cluster's
// text, always asynchronously; -1 means no limit.
import assert from 'node:assert/strict';
import test from 'node:test';
import { COMPLETED, Harness, TEST, fixture, waitFor } from './cc-helpers.mjs';

const sleep = fixture('sleep.js');
const echo = fixture('echo.js');
const BACKLOG_INFO = /^maximum work backlog hit \((\d+)\)! {2}cannot enqueue additional work!$/;

test('jobs beyond max_backlog are refused asynchronously with the original texts', TEST, async (t) => {
  const h = new Harness(t, { module: sleep, max_processes: 1, max_backlog: 2 });
  // Long jobs: nothing completes while we look; exit() fails them at cleanup.
  const jobs = Array.from({ length: 6 }, (_, i) => h.job({ ms: 20000, tag: i }, i));
  for (const j of jobs) assert.equal(j.returned, h.cc, 'enqueue returns the cluster');
  assert.deepEqual(jobs.map((j) => j.calls.length), [0, 0, 0, 0, 0, 0], 'no callback ran inside enqueue');

  await waitFor(() => jobs[5].calls.length === 1, 'the last job to be refused');
  await waitFor(() => h.messages('info', BACKLOG_INFO).length === 3, 'three backlog infos');
  const refused = jobs.filter((j) => j.calls.length);
  assert.deepEqual(refused.map((j) => j.tag), [3, 4, 5], 'one running and two waiting are accepted');
  for (const j of refused) {
    assert.equal(j.calls.length, 1);
    assert.deepEqual(j.calls[0].args, ['cannot enqueue work: maximum backlog exceeded (2)']);
    assert.equal(j.calls[0].sync, false);
  }
  assert.deepEqual(h.messages('info', BACKLOG_INFO), Array(3).fill(
    'maximum work backlog hit (2)!  cannot enqueue additional work!',
  ));
  assert.deepEqual(h.errors, []);
});

test('a refused job leaves the accepted ones to complete', TEST, async (t) => {
  const h = new Harness(t, { module: sleep, max_processes: 1, max_backlog: 1 });
  const jobs = Array.from({ length: 4 }, (_, i) => h.job({ ms: 30, tag: i }, i));
  await Promise.all(jobs.map((j) => j.done));
  assert.deepEqual(jobs.map((j) => j.err), [null, null,
    'cannot enqueue work: maximum backlog exceeded (1)', 'cannot enqueue work: maximum backlog exceeded (1)']);
  assert.deepEqual(jobs.slice(0, 2).map((j) => j.result.tag), [0, 1]);
  // The backlog has room again once the queue drained.
  const later = await h.run({ ms: 1, tag: 'later' });
  assert.deepEqual([later.err, later.result.tag], [null, 'later']);
});

test('max_backlog -1 means no limit', TEST, async (t) => {
  const h = new Harness(t, { module: echo, max_processes: 1, max_backlog: -1 });
  const jobs = Array.from({ length: 200 }, (_, i) => h.job(i));
  await Promise.all(jobs.map((j) => j.done));
  for (const j of jobs) assert.deepEqual(j.calls.map((c) => c.args), [[null, j.args]]);
  assert.deepEqual(h.messages('info', BACKLOG_INFO), []);
});

test('enqueue without a callback: accepted jobs run, refused ones do not throw', TEST, async (t) => {
  const h = new Harness(t, { module: sleep, max_processes: 1, max_backlog: 1 });
  const uncaught = [];
  const onUncaught = (e) => uncaught.push(e);
  process.on('uncaughtException', onUncaught);
  t.after(() => process.off('uncaughtException', onUncaught));

  assert.equal(h.cc.enqueue({ ms: 100, tag: 'running' }), h.cc);
  assert.equal(h.cc.enqueue({ ms: 1, tag: 'waiting' }), h.cc);
  assert.equal(h.cc.enqueue({ ms: 1, tag: 'refused' }), h.cc);
  await waitFor(() => h.messages('info', BACKLOG_INFO).length === 1, 'the backlog info');
  await waitFor(() => h.messages('debug', COMPLETED).length === 2, 'the two accepted jobs to complete');
  const { err, result } = await h.run({ ms: 1, tag: 'with callback' });
  assert.equal(err, null);
  assert.equal(result.tag, 'with callback');
  assert.deepEqual(uncaught, []);
  assert.deepEqual(h.errors, []);
});

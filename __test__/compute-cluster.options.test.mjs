// ComputeCluster constructor: option validation (compute-cluster throws
// strings, not Errors) and defaults.
import assert from 'node:assert/strict';
import os from 'node:os';
import test from 'node:test';
import { ComputeCluster, Harness, SPAWNED, TEST, fixture, waitFor, within } from './cc-helpers.mjs';

const echo = fixture('echo.js');
const sleep = fixture('sleep.js');

function throwsString(fn, expected) {
  let thrown;
  try {
    fn();
  } catch (e) {
    thrown = { e };
  }
  assert.ok(thrown, `expected the constructor to throw ${JSON.stringify(expected)}`);
  assert.equal(typeof thrown.e, 'string', 'compute-cluster throws strings, not Errors');
  assert.equal(thrown.e, expected);
}

test('a missing or non-string module throws the original string', () => {
  const missing = "missing required 'module' argument";
  throwsString(() => new ComputeCluster(), missing);
  throwsString(() => new ComputeCluster({}), missing);
  throwsString(() => new ComputeCluster({ max_processes: 2 }), missing);
  throwsString(() => new ComputeCluster({ module: 42 }), missing);
});

test('a module path that does not exist throws the original string', () => {
  const nowhere = fixture('no-such-worker.js');
  throwsString(() => new ComputeCluster({ module: nowhere }), `module doesn't exist: ${nowhere}`);
});

test('bad max_processes, max_backlog and max_request_time throw the original strings', () => {
  const mp = 'when provided, max_processes must be an integer greater than one';
  for (const bad of [-1, 0.5, '4', 'two', {}, true]) {
    throwsString(() => new ComputeCluster({ module: echo, max_processes: bad }), mp);
  }
  for (const bad of ['10', 'ten', {}, true]) {
    throwsString(
      () => new ComputeCluster({ module: echo, max_backlog: bad }),
      'when provided, max_backlog must be a number',
    );
  }
  for (const bad of ['1', 'slow', {}, true]) {
    throwsString(
      () => new ComputeCluster({ module: echo, max_request_time: bad }),
      'when provided, max_request_time must be a number',
    );
  }
});

test('valid options construct a cluster without spawning anything', TEST, async (t) => {
  const h = new Harness(t, { module: echo, max_processes: 1, max_backlog: -1, max_request_time: 2.5 });
  assert.ok(h.cc instanceof ComputeCluster);
  assert.equal(typeof h.cc.on, 'function', 'a ComputeCluster is an EventEmitter');
  await new Promise((resolve) => setTimeout(resolve, 100));
  assert.deepEqual(h.messages('info', SPAWNED), [], 'workers are spawned lazily, not at construction');
});

test('enqueue is chainable and works after a cluster is made', TEST, async (t) => {
  const h = new Harness(t, { module: echo, max_processes: 1 });
  const results = [];
  const returned = h.cc
    .enqueue('a', (err, r) => results.push([err, r]))
    .enqueue('b', (err, r) => results.push([err, r]));
  assert.equal(returned, h.cc);
  await waitFor(() => results.length === 2, 'both jobs');
  assert.deepEqual(results, [[null, 'a'], [null, 'b']]);
});

// Enqueues `count` long jobs at once and returns the records; none of them
// completes while the test looks (they are failed by exit() at cleanup).
function burst(h, count) {
  return Array.from({ length: count }, (_, i) => h.job({ ms: 20000, tag: i }, i));
}

test('max_processes defaults to ceil(cpus × 1.25) and max_backlog to 10 × that', TEST, async (t) => {
  const max = Math.ceil(os.cpus().length * 1.25);
  const h = new Harness(t, { module: sleep });
  // `max` start at once, 10 × max wait, the last two are refused.
  const jobs = burst(h, max + 10 * max + 2);
  await waitFor(() => h.spawnedPids.length >= max, `${max} workers`);
  await waitFor(() => jobs.filter((j) => j.calls.length).length >= 2, 'two rejections');
  await new Promise((resolve) => setTimeout(resolve, 200));

  const spawned = h.messages('info', SPAWNED);
  assert.equal(spawned.length, max);
  spawned.forEach((m, i) => {
    assert.match(m, new RegExp(`^spawned new worker process \\(\\d+\\) ${i + 1}/${max} processes running$`));
  });
  const refused = jobs.filter((j) => j.calls.length);
  assert.deepEqual(refused.map((j) => j.tag), [11 * max, 11 * max + 1]);
  for (const j of refused) {
    assert.deepEqual(j.calls[0].args, [`cannot enqueue work: maximum backlog exceeded (${10 * max})`]);
  }
});

for (const [label, options] of [
  ['when not given', {}],
  ['when given as 0 (compute-cluster treats 0 as "use the default")', { max_backlog: 0 }],
]) {
  test(`max_backlog is 10 × max_processes ${label}`, TEST, async (t) => {
    const h = new Harness(t, { module: sleep, max_processes: 1, ...options });
    const jobs = burst(h, 13);
    await waitFor(() => jobs[12].calls.length === 1, 'the last job to be refused');
    await within(jobs[11].done, 100);
    const refused = jobs.filter((j) => j.calls.length);
    assert.deepEqual(refused.map((j) => j.tag), [11, 12], 'one running and 10 waiting are accepted');
    for (const j of refused) {
      assert.deepEqual(j.calls[0].args, ['cannot enqueue work: maximum backlog exceeded (10)']);
    }
  });
}

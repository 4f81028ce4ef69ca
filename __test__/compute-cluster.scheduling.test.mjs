// Workers are spawned lazily, one per job that finds no idle worker, up to
// max_processes; each worker holds one job at a time; jobs start in FIFO order.
import assert from 'node:assert/strict';
import test from 'node:test';
import { Harness, SPAWNED, TEST, fixture } from './cc-helpers.mjs';

const sleep = fixture('sleep.js');
const mortal = fixture('mortal.js');

test('an idle worker is reused: sequential jobs run on one process', TEST, async (t) => {
  const h = new Harness(t, { module: mortal, max_processes: 4 });
  await new Promise((resolve) => setTimeout(resolve, 100));
  assert.equal(h.spawnedPids.length, 0, 'nothing is spawned before the first job');
  const pids = [];
  for (let i = 0; i < 6; i++) {
    const { err, result } = await h.run({ op: 'echo', v: i });
    assert.equal(err, null);
    assert.equal(result.v, i);
    pids.push(result.pid);
  }
  assert.equal(new Set(pids).size, 1, 'one worker served every sequential job');
  assert.deepEqual(h.messages('info', SPAWNED), [`spawned new worker process (${pids[0]}) 1/4 processes running`]);
});

test('a burst spawns up to max_processes workers, never more, one job per worker at a time', TEST, async (t) => {
  const h = new Harness(t, { module: sleep, max_processes: 3, max_backlog: -1 });
  const jobs = Array.from({ length: 12 }, (_, i) => h.job({ ms: 100, tag: i }, i));
  await Promise.all(jobs.map((j) => j.done));
  for (const j of jobs) {
    assert.equal(j.err, null);
    assert.equal(j.result.tag, j.tag);
    assert.equal(j.result.concurrent, 1, `job ${j.tag} shared its worker with another job`);
  }
  const pids = new Set(jobs.map((j) => j.result.pid));
  assert.equal(pids.size, 3);
  const spawned = h.messages('info', SPAWNED);
  assert.equal(spawned.length, 3);
  spawned.forEach((m, i) => {
    const [, pid, n, max] = SPAWNED.exec(m);
    assert.ok(pids.has(Number(pid)), `spawned pid ${pid} ran no job`);
    assert.deepEqual([n, max], [String(i + 1), '3']);
  });
});

test('with one worker, jobs run in the order they were enqueued', TEST, async (t) => {
  const h = new Harness(t, { module: sleep, max_processes: 1, max_backlog: -1 });
  const order = [];
  const jobs = Array.from({ length: 8 }, (_, i) => {
    const j = h.job({ ms: 5, tag: i }, i);
    j.done.then(() => order.push(i));
    return j;
  });
  await Promise.all(jobs.map((j) => j.done));
  assert.deepEqual(order, [0, 1, 2, 3, 4, 5, 6, 7]);
  assert.deepEqual(jobs.map((j) => j.result.tag), [0, 1, 2, 3, 4, 5, 6, 7]);
  assert.equal(new Set(jobs.map((j) => j.result.pid)).size, 1);
});

test('more workers are spawned only while none is idle', TEST, async (t) => {
  const h = new Harness(t, { module: sleep, max_processes: 4, max_backlog: -1 });
  // Two jobs at once: two workers.
  await Promise.all([h.run({ ms: 50, tag: 'a' }), h.run({ ms: 50, tag: 'b' })]);
  assert.equal(h.spawnedPids.length, 2);
  // Two more at once, both workers idle: no new worker.
  await Promise.all([h.run({ ms: 50, tag: 'c' }), h.run({ ms: 50, tag: 'd' })]);
  assert.equal(h.spawnedPids.length, 2);
  // Three at once: one more worker.
  await Promise.all(['e', 'f', 'g'].map((tag) => h.run({ ms: 50, tag })));
  assert.equal(h.spawnedPids.length, 3);
  assert.deepEqual(
    h.messages('info', SPAWNED).map((m) => SPAWNED.exec(m).slice(2).join('/')),
    ['1/4', '2/4', '3/4'],
  );
});

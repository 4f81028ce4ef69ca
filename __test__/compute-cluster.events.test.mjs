// 'info' and 'debug' events carry compute-cluster's texts, in order; an
// 'error' with no listener throws, as with any EventEmitter.
import assert from 'node:assert/strict';
import test from 'node:test';
import { COMPLETED, Harness, PASSING, SPAWNED, TEST, fixture, killIfAlive, runNode, waitFor } from './cc-helpers.mjs';

const echo = fixture('echo.js');

test('one job: spawned info, passing and completed debugs, then the exit infos', TEST, async (t) => {
  const h = new Harness(t, { module: echo, max_processes: 1 });
  const { err, result } = await h.run('hello');
  assert.deepEqual([err, result], [null, 'hello']);
  await waitFor(() => h.messages('debug', COMPLETED).length === 1, 'the completed debug');

  const [pid] = h.spawnedPids;
  assert.ok(Number.isInteger(pid) && pid > 0);
  assert.deepEqual(h.infos, [`spawned new worker process (${pid}) 1/1 processes running`]);
  assert.equal(h.debugs.length, 2);
  assert.equal(h.debugs[0], `passing compute job to process ${pid}`);
  assert.match(h.debugs[1], new RegExp(`^process ${pid} completed work in \\d+\\.\\d\\ds$`));
  const order = h.log.map((e) => e.type);
  assert.ok(order.indexOf('info') < order.indexOf('debug'), 'spawn reported before the job is passed');

  assert.deepEqual(await h.exit(), [null]);
  assert.equal(h.infos[1], 'exit called, shutting down 1 child processes');
  assert.match(h.infos[2], new RegExp(`^compute process \\(${pid}\\) exits with code (null|\\d+)$`));
  assert.equal(h.infos.length, 3);
  assert.deepEqual(h.errors, [], "no 'error' while exiting");
});

test('every job gets a passing and a completed debug naming its worker', TEST, async (t) => {
  const h = new Harness(t, { module: fixture('mortal.js'), max_processes: 3 });
  const jobs = Array.from({ length: 9 }, (_, i) => h.job({ op: 'echo', v: i }, i));
  await Promise.all(jobs.map((j) => j.done));
  await waitFor(() => h.messages('debug', COMPLETED).length === 9, 'nine completed debugs');
  const passing = h.messages('debug', PASSING).map((m) => Number(PASSING.exec(m)[1]));
  const completed = h.messages('debug', COMPLETED).map((m) => Number(COMPLETED.exec(m)[1]));
  assert.equal(passing.length, 9);
  const count = (list) => list.reduce((acc, pid) => acc.set(pid, (acc.get(pid) ?? 0) + 1), new Map());
  const ran = count(jobs.map((j) => j.result.pid));
  assert.deepEqual(count(passing), ran, 'one passing debug per job, naming the worker that ran it');
  assert.deepEqual(count(completed), ran, 'one completed debug per job, naming the worker that ran it');
  assert.deepEqual([...ran.keys()].sort(), [...h.spawnedPids].sort());
  const spawned = h.messages('info', SPAWNED).map((m) => SPAWNED.exec(m).slice(2).join('/'));
  assert.deepEqual(spawned, ['1/3', '2/3', '3/3']);
});

test("an 'error' with no listener throws in the host, after the job's callback", TEST, async (t) => {
  const out = await runNode('parent-unhandled-error.js');
  t.after(() => {
    for (const m of out.stdout.matchAll(/\((\d+)\)/g)) killIfAlive(Number(m[1]));
  });
  assert.equal(out.timedOut, false, `the host hung; stdout:\n${out.stdout}`);
  assert.notEqual(out.code, 0, 'the unhandled error must end the host');
  assert.equal(out.lines.length, 1, out.stdout);
  const m = /^cb (compute process \((\d+)\) dies with code: 5)$/.exec(out.lines[0]);
  assert.ok(m, `unexpected stdout: ${out.stdout}`);
  assert.ok(out.stderr.includes(m[1]), `stderr does not name the error:\n${out.stderr}`);
});

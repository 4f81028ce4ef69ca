// close() drains, terminate() stops now; neither leaves a process behind; an idle pool does not
// keep Node alive, a pending job does.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import test from 'node:test';
import {
  TEST, assertReaped, entries, fixture, isGone, openPool, rejectsWith, repoRoot, runNode, waitFor,
} from './pool-helpers.mjs';

const basic = fixture('basic.js');
const crash = fixture('crash.js');

test('close() drains: running and queued jobs all resolve, then the workers stop', TEST, async (t) => {
  const { pool, log, spawned } = openPool(t, { module: basic, maxWorkers: 2 });
  const jobs = Array.from({ length: 8 }, (_, i) => pool.call('sleep', 10, i));
  const cb = new Promise((resolve) => pool.enqueue('queued-cb', (...args) => resolve(args)));
  const closed = pool.close();
  assert.deepEqual(await Promise.all(jobs), [0, 1, 2, 3, 4, 5, 6, 7]);
  const [err, r] = await cb;
  assert.equal(err, null);
  assert.equal(r.echoed, 'queued-cb');
  assert.equal(await closed, undefined);
  assert.deepEqual(pool.pids, []);
  assert.equal(pool.pending, 0);
  assert.ok(spawned.length >= 1);
  spawned.forEach(assertReaped);
  const exits = entries(log, 'workerExit');
  assert.equal(exits.length, spawned.length);
  assert.ok(exits.every((e) => e[1].expected === true), 'stopping workers on close is expected');
});

test('after close(), new jobs reject ERR_POOL_CLOSED (run, call, enqueue), asynchronously', TEST, async (t) => {
  const { pool } = openPool(t, { module: basic, maxWorkers: 1 });
  assert.equal(await pool.call('add', 1, 1), 2);
  const closed = pool.close();
  let sync = true;
  const late = rejectsWith(pool.call('add', 1, 2), 'ERR_POOL_CLOSED');
  const cbArgs = new Promise((resolve) => pool.enqueue('x', (...args) => resolve({ args, sync })));
  sync = false;
  await late;
  await rejectsWith(pool.run('y'), 'ERR_POOL_CLOSED');
  const { args, sync: wasSync } = await cbArgs;
  assert.equal(wasSync, false, 'the callback is not called synchronously');
  assert.equal(args.length, 1);
  assert.equal(args[0].code, 'ERR_POOL_CLOSED');
  await closed;
  await rejectsWith(pool.call('add', 1, 2), 'ERR_POOL_CLOSED');
  // close() again: resolves; terminate() after close: resolves.
  await pool.close();
  await pool.terminate();
  assert.deepEqual(pool.pids, []);
});

test('close() on a pool that never ran a job resolves at once', TEST, async (t) => {
  const { pool, spawned } = openPool(t, { module: basic, maxWorkers: 2 });
  await pool.close();
  assert.deepEqual(spawned, []);
  assert.deepEqual(pool.pids, []);
  await rejectsWith(pool.run(1), 'ERR_POOL_CLOSED');
});

test('terminate(): running and queued jobs reject ERR_POOL_TERMINATED, the processes are gone', TEST, async (t) => {
  const { pool, log } = openPool(t, { module: crash, maxWorkers: 2 });
  const started = [];
  const running = [0, 1].map(() => rejectsWith(
    pool.run(null, { name: 'hang', onProgress: (pid) => started.push(pid) }), 'ERR_POOL_TERMINATED'));
  const queued = [pool.call('echo', 'q1'), pool.call('hang'), pool.run('q3', { name: 'echo' })]
    .map((p) => rejectsWith(p, 'ERR_POOL_TERMINATED'));
  const cb = new Promise((resolve) => pool.enqueue('q4', (...args) => resolve(args)));
  await waitFor(() => started.length === 2, 'both workers to run a job');
  const pids = pool.pids;
  assert.deepEqual([...pids].sort(), [...started].sort());

  assert.equal(await pool.terminate(), undefined);
  const errs = await Promise.all([...running, ...queued]);
  for (const err of errs) assert.equal(err.name, 'PoolError');
  const [cbErr] = await cb;
  assert.equal(cbErr.code, 'ERR_POOL_TERMINATED');
  assert.deepEqual(pool.pids, []);
  assert.equal(pool.pending, 0);
  pids.forEach(assertReaped);
  assert.equal(entries(log, 'workerExit').length, 2);
  await rejectsWith(pool.call('echo', 1), 'ERR_POOL_CLOSED');
});

test('terminate() during a close() drain rejects what is left', TEST, async (t) => {
  const { pool } = openPool(t, { module: crash, maxWorkers: 1 });
  let pid;
  const hanging = rejectsWith(pool.run(null, { name: 'hang', onProgress: (p) => { pid = p; } }), 'ERR_POOL_TERMINATED');
  const queued = rejectsWith(pool.call('echo', 1), 'ERR_POOL_TERMINATED');
  await waitFor(() => pid !== undefined, 'the job to start');
  const closed = pool.close();
  await pool.terminate();
  await closed;
  await hanging;
  await queued;
  assertReaped(pid);
});

test('terminate() kills a worker that ignores SIGTERM after killGraceMs', TEST, async (t) => {
  const { pool, log } = openPool(t, { module: fixture('stubborn.js'), maxWorkers: 1, killGraceMs: 100 });
  let pid;
  const job = rejectsWith(pool.run(null, { name: 'hang', onProgress: (p) => { pid = p; } }), 'ERR_POOL_TERMINATED');
  await waitFor(() => pid !== undefined, 'the job to start');
  await pool.terminate();
  await job;
  assertReaped(pid);
  const exits = entries(log, 'workerExit');
  assert.equal(exits.length, 1);
  assert.equal(exits[0][1].signal, 'SIGKILL');
});

test('close() stops an idle worker that ignores SIGTERM, by SIGKILL after killGraceMs', TEST, async (t) => {
  const { pool } = openPool(t, { module: fixture('stubborn.js'), maxWorkers: 1, killGraceMs: 50 });
  const pid = await pool.call('pid');
  await pool.close();
  assertReaped(pid);
});

test('an idle pool does not keep Node alive', TEST, async () => {
  const r = await runNode('host-idle.js');
  assert.equal(r.timedOut, false, `the host did not exit by itself: ${r.stdout}${r.stderr}`);
  assert.equal(r.code, 0, r.stderr);
  const m = /^result hello (\d+)$/.exec(r.lines[0]);
  assert.ok(m, `unexpected output: ${r.stdout}`);
  assert.equal(r.lines[1], 'exit 0');
  const workerPid = Number(m[1]);
  await waitFor(() => isGone(workerPid), 'the worker to go with its host', 5000);
});

test('a pending job keeps Node alive until it settles', TEST, async () => {
  const r = await runNode('host-pending.js');
  assert.equal(r.timedOut, false, `host hung: ${r.stdout}${r.stderr}`);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual([...r.lines].sort(), ['callback null cb', 'exit 0', 'promise slow']);
  assert.equal(r.lines.at(-1), 'exit 0');
});

test('a pool created by a `node -e` script starts real workers', TEST, async () => {
  // process.execArgv of `node -e CODE` holds `-e CODE`: passed on to workers, it would run the
  // eval'd script again instead of the worker bootstrap (a fork chain without the guard).
  const code = readFileSync(fixture('host-eval.js'), 'utf8');
  const r = await runNode(null, {
    nodeArgs: ['-e', code],
    env: { COMRADE_ROOT: repoRoot, COMRADE_MODULE: basic },
  });
  assert.equal(r.timedOut, false, `host hung: ${r.stdout}${r.stderr}`);
  assert.deepEqual(r.lines, ['result 5']);
  assert.equal(r.code, 0);
});

test('pools inside worker threads: jobs run, and terminating the thread leaves no process behind', TEST, async () => {
  const { Worker } = await import('node:worker_threads');
  const code = `
    const { parentPort } = require('node:worker_threads');
    const { Pool, ComputeCluster } = require(${JSON.stringify(repoRoot)});
    const pool = new Pool({ module: ${JSON.stringify(basic)}, maxWorkers: 2 });
    const cc = new ComputeCluster({ module: ${JSON.stringify(path.join(repoRoot, '__test__', 'fixtures', 'compute-cluster', 'echo.js'))}, max_processes: 1 });
    cc.enqueue('hi', (err, r) => {
      Promise.all([pool.call('add', 2, 3), pool.call('sleep', 20), pool.call('sleep', 20)])
        .then(([sum]) => parentPort.postMessage({ err, r, sum, pids: pool.pids }));
    });
  `;
  const pids = [];
  // Several rounds: each thread's event loop, with the pool's handles on it, is torn down.
  for (let round = 0; round < 3; round++) {
    const w = new Worker(code, { eval: true });
    const msg = await new Promise((resolve, reject) => {
      w.once('message', resolve);
      w.once('error', reject);
    });
    assert.equal(msg.err, null);
    assert.equal(msg.r, 'hi');
    assert.equal(msg.sum, 5);
    assert.ok(msg.pids.length >= 1, `the pool's workers: ${msg.pids}`);
    pids.push(...msg.pids);
    await w.terminate();
  }
  for (const pid of pids) await waitFor(() => isGone(pid), `worker ${pid} gone with its thread`);
});

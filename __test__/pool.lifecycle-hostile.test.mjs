// Lifecycle under hostile conditions (issue 15): a worker thread that ends stops only its own
// pools' workers (point 6), and a worker's own children go when the worker is stopped or the
// host exits (point 14).
import assert from 'node:assert/strict';
import path from 'node:path';
import test from 'node:test';
import { Worker } from 'node:worker_threads';
import {
  TEST, entries, fixture, isGone, killIfAlive, openPool, repoRoot, runNode, waitFor,
} from './pool-helpers.mjs';

const index = path.join(repoRoot, 'index.js');

/** Runs `body` (a function's source, given `Pool`, `module` and `post`) on a worker thread. */
function onThread(body, module) {
  const thread = new Worker(`
    const { parentPort, workerData } = require('node:worker_threads');
    const { Pool } = require(workerData.index);
    const post = (v) => parentPort.postMessage(v);
    (${body})(Pool, workerData.module, post);
  `, { eval: true, workerData: { index, module } });
  const messages = [];
  thread.on('message', (m) => messages.push(m));
  const exited = new Promise((resolve, reject) => {
    thread.once('exit', resolve);
    thread.once('error', reject);
  });
  return { thread, messages, exited };
}

test("a worker thread that closes its pool and ends leaves the main thread's workers alone", TEST, async (t) => {
  const { pool, log } = openPool(t, { module: fixture('basic.js'), maxWorkers: 1 });
  const before = await pool.call('pid');
  const { messages, exited } = onThread(async (Pool, module, post) => {
    const p = new Pool({ module, maxWorkers: 1 });
    post(await p.call('pid'));
    await p.close();
  }, fixture('basic.js'));
  assert.equal(await exited, 0);
  assert.equal(messages.length, 1);
  const threadWorker = messages[0];
  assert.notEqual(threadWorker, before);
  assert.equal(await pool.call('pid'), before, 'the same worker still serves the main pool');
  assert.ok(!isGone(before));
  assert.deepEqual(entries(log, 'workerExit'), [], 'no main-thread worker exited');
});

test("a worker thread that ends with its pool open kills its own workers, not the main thread's", TEST, async (t) => {
  const { pool, log } = openPool(t, { module: fixture('basic.js'), maxWorkers: 1 });
  const before = await pool.call('pid');
  const { messages, exited } = onThread(async (Pool, module, post) => {
    const p = new Pool({ module, maxWorkers: 1 });
    post(await p.call('pid'));
    // The pool is left open; with no job pending it does not keep the thread alive.
  }, fixture('basic.js'));
  assert.equal(await exited, 0);
  const threadWorker = messages[0];
  t.after(() => killIfAlive(threadWorker));
  await waitFor(() => isGone(threadWorker), "the thread's worker to be killed");
  assert.equal(await pool.call('pid'), before, 'the same worker still serves the main pool');
  assert.deepEqual(entries(log, 'workerExit'), []);
});

test('process.exit() still kills the workers of every thread', TEST, async () => {
  let pids;
  const r = await runNode('host-threads.js', {
    onLine: (line) => {
      pids = JSON.parse(line);
    },
  });
  assert.equal(r.code, 0, r.stderr);
  assert.ok(pids, r.stdout);
  try {
    await waitFor(() => isGone(pids.main) && isGone(pids.thread), 'both workers to be killed');
  } finally {
    killIfAlive(pids.main);
    killIfAlive(pids.thread);
  }
});

async function grandchildOf(t, pool) {
  const pids = await pool.call('spawnSleep');
  t.after(() => killIfAlive(pids.child));
  assert.ok(!isGone(pids.child));
  return pids;
}

test("close() stops a worker's own children with it", TEST, async (t) => {
  const { pool } = openPool(t, { module: fixture('grandchild.js'), maxWorkers: 1 });
  const { worker, child } = await grandchildOf(t, pool);
  await pool.close();
  assert.ok(isGone(worker));
  await waitFor(() => isGone(child), `the worker's child ${child} to be gone`);
});

test("terminate() stops a worker's own children with it", TEST, async (t) => {
  const { pool } = openPool(t, { module: fixture('grandchild.js'), maxWorkers: 1 });
  const { child } = await grandchildOf(t, pool);
  await pool.terminate();
  await waitFor(() => isGone(child), `the worker's child ${child} to be gone`);
});

test("a worker that crashes takes its own children with it", TEST, async (t) => {
  const { pool, log } = openPool(t, { module: fixture('grandchild.js'), maxWorkers: 1 });
  const { worker, child } = await grandchildOf(t, pool);
  process.kill(worker, 'SIGKILL');
  await waitFor(() => entries(log, 'workerExit').length === 1, 'the exit');
  await waitFor(() => isGone(child), `the worker's child ${child} to be gone`);
});

for (const how of ['exit', 'SIGKILL', 'SIGTERM']) {
  test(`a host that ends by ${how === 'exit' ? 'process.exit()' : how} leaves no grandchild behind`, TEST, async () => {
    let pids;
    const r = await runNode('host-grandchild.js', {
      args: [how === 'exit' ? 'exit' : 'wait'],
      onLine: (line, child) => {
        pids = JSON.parse(line);
        if (how !== 'exit') child.kill(how);
      },
    });
    assert.ok(pids, r.stdout + r.stderr);
    try {
      await waitFor(() => isGone(pids.worker), 'the worker to die');
      await waitFor(() => isGone(pids.child), `the worker's child ${pids.child} to die`);
    } finally {
      killIfAlive(pids.worker);
      killIfAlive(pids.child);
    }
  });
}

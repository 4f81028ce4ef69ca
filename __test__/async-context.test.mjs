// Async context: a job's callback and onProgress run in the async context of the call that made
// the job (run(), call(), enqueue()); the pool's events run in the context the pool was
// constructed in (as with Node's EventEmitterAsyncResource). Shown with AsyncLocalStorage: the
// store seen where the code runs is the one of the call (or of the construction), never the one
// of whatever else happened to be running when the results came back.
import assert from 'node:assert/strict';
import { AsyncLocalStorage } from 'node:async_hooks';
import test from 'node:test';
import { TEST, fixture, openPool, waitFor } from './pool-helpers.mjs';
import { Harness, fixture as ccFixture } from './cc-helpers.mjs';

const als = new AsyncLocalStorage();
const basic = fixture('basic.js');
const api = fixture('api.js');

// A pool made inside als.run(store, ...).
function poolIn(t, store, options) {
  return als.run(store, () => openPool(t, options));
}

function clusterIn(t, store, options) {
  return als.run(store, () => new Harness(t, options));
}

test('Pool enqueue(): the callback runs in the context of the enqueue() call', TEST, async (t) => {
  const { pool } = poolIn(t, 'constructor', { module: basic, maxWorkers: 2 });
  const seen = await Promise.all(['a', 'b', 'c'].map((tag) => als.run(tag, () => new Promise((resolve) => {
    pool.enqueue(tag, (err, r) => resolve([err, r.echoed, als.getStore()]));
  }))));
  assert.deepEqual(seen, [[null, 'a', 'a'], [null, 'b', 'b'], [null, 'c', 'c']]);
  // A job that fails: its callback too.
  const failed = await als.run('bad', () => new Promise((resolve) => {
    pool.enqueue(1n, (err) => resolve([err.code, als.getStore()]));
  }));
  assert.deepEqual(failed, ['ERR_UNSERIALIZABLE', 'bad']);
});

test('Pool run(): onProgress runs in the context of the run() call', TEST, async (t) => {
  const { pool } = poolIn(t, 'constructor', { module: api, maxWorkers: 2 });
  const stores = { x: [], y: [] };
  const jobs = ['x', 'y'].map((tag) => als.run(tag, () => pool.run(4, {
    name: 'count',
    onProgress: () => stores[tag].push(als.getStore()),
  })));
  // The Promise's reactions run in the context of their then(), as always.
  const after = await als.run('awaiting', async () => {
    const results = await Promise.all(jobs);
    return [results, als.getStore()];
  });
  assert.deepEqual(after, [['done', 'done'], 'awaiting']);
  assert.deepEqual(stores.x, Array(5).fill('x'));
  assert.deepEqual(stores.y, Array(5).fill('y'));
});

test('Pool events: listeners run in the context the pool was constructed in', TEST, async (t) => {
  const { pool } = poolIn(t, 'constructor', { module: api, maxWorkers: 1 });
  const seen = [];
  pool.on('event', (name) => seen.push([name, als.getStore()]));
  pool.on('workerSpawn', () => seen.push(['workerSpawn', als.getStore()]));
  await als.run('caller', () => pool.call('emit', 'hello', 1));
  await als.run('caller', () => pool.call('emitMany', 3));
  await waitFor(() => seen.filter((e) => e[0] === 'tick').length === 3, 'the ticks');
  assert.deepEqual(seen.filter((e) => e[0] !== 'from-init'), [
    ['workerSpawn', 'constructor'],
    ['hello', 'constructor'],
    ['tick', 'constructor'],
    ['tick', 'constructor'],
    ['tick', 'constructor'],
  ]);
});

test('ComputeCluster enqueue(): the callback runs in the context of the enqueue() call', TEST, async (t) => {
  const h = clusterIn(t, 'constructor', { module: ccFixture('echo.js'), max_processes: 2 });
  const seen = await Promise.all(['a', 'b', 'c'].map((tag) => als.run(tag, () => new Promise((resolve) => {
    h.cc.enqueue({ tag }, (err, r) => resolve([err, r.tag, als.getStore()]));
  }))));
  assert.deepEqual(seen, [[null, 'a', 'a'], [null, 'b', 'b'], [null, 'c', 'c']]);
});

test('ComputeCluster events: listeners run in the context the cluster was constructed in', TEST, async (t) => {
  const h = clusterIn(t, 'constructor', { module: ccFixture('sleep.js'), max_processes: 1, max_backlog: 1 });
  const seen = [];
  h.cc.on('info', (msg) => seen.push([msg.split(' ')[0], als.getStore()]));
  // Four jobs in one tick: one runs, one waits, two are refused (an 'info' each, emitted while
  // the batch is handed over, within the enqueue() callers' tick).
  const errs = await als.run('caller', () => Promise.all([0, 1, 2, 3].map((tag) => new Promise((resolve) => {
    h.cc.enqueue({ ms: 10, tag }, (err) => resolve([err, als.getStore()]));
  }))));
  assert.deepEqual(errs.map((e) => e[1]), Array(4).fill('caller'));
  assert.deepEqual(errs.filter((e) => e[0]).length, 2);
  await waitFor(() => seen.some((e) => e[0] === 'spawned'), 'the spawn info');
  assert.deepEqual(seen.sort(), [
    ['maximum', 'constructor'],
    ['maximum', 'constructor'],
    ['spawned', 'constructor'],
  ]);
});

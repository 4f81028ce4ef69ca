// Every entry point of the package, loaded both ways: `import` (the "import" condition, a thin
// .mjs file) gives the very objects `require` gives (one engine instance per process), with the
// same named exports. And the worker API from an ES module worker: progress() and
// getInitData() by name, initData as a live binding, never a silent `undefined`.
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import path from 'node:path';
import test from 'node:test';
import { fileURLToPath } from 'node:url';
import { TEST, entries, fixture, openPool, rejectsWith } from './pool-helpers.mjs';

const require = createRequire(import.meta.url);
const root = path.dirname(path.dirname(fileURLToPath(import.meta.url)));
// The package's own name (a self-reference resolves through its `exports`).
const { name } = require('../package.json');

const ENTRIES = [
  { sub: '', file: 'index', named: ['Pool', 'PoolError', 'codes', 'ncpu', 'ComputeCluster', 'startWorkerHost'] },
  { sub: '/compute-cluster', file: 'compute-cluster', named: [] },
  {
    sub: '/worker', file: 'worker',
    named: ['progress', 'emit', 'retire', 'onMessage', 'getInitData', 'getSignal', 'traceContext', 'isWorker', 'initData', 'STATE'],
    // A per-job getter of the CommonJS object: an ES module's bindings are static, so it imports
    // getSignal() (worker.d.mts leaves `signal` out, so TypeScript says so too).
    cjsOnly: ['signal'],
  },
];

for (const { sub, file, named, cjsOnly = [] } of ENTRIES) {
  test(`${name}${sub}: import and require give the same objects`, async () => {
    const spec = name + sub;
    assert.equal(require.resolve(spec), path.join(root, `${file}.js`));
    assert.equal(import.meta.resolve(spec), new URL(`${file}.mjs`, `file://${root}/`).href);

    const cjs = require(spec);
    const esm = await import(spec);
    // The default export is module.exports itself, as Node's own CommonJS interop gives it.
    assert.equal(esm.default, cjs);
    assert.deepEqual(Object.keys(esm).sort(), ['default', ...named].sort());
    // Every enumerable export of the CommonJS entry is a named export of the ES one (but cjsOnly).
    const cjsKeys = typeof cjs === 'function' ? [] : Object.keys(cjs);
    assert.deepEqual(cjsKeys.sort(), [...named, ...cjsOnly].sort());
    for (const key of named) {
      if (key === 'initData') continue; // a getter in CommonJS, a live binding in ESM (below)
      assert.equal(esm[key], cjs[key], `${spec}: ${key} is the same object both ways`);
    }
    // Loading the .mjs file directly changes nothing either.
    assert.equal((await import(`../${file}.mjs`)).default, cjs);
  });
}

test('classes are shared: a Pool from import is a Pool of require', async () => {
  const cjs = require(name);
  const { Pool, PoolError, ComputeCluster } = await import(name);
  const CC = (await import(`${name}/compute-cluster`)).default;
  assert.equal(Pool, cjs.Pool);
  assert.equal(PoolError, cjs.PoolError);
  assert.equal(ComputeCluster, CC);
  assert.equal(CC, require(`${name}/compute-cluster`));
});

test('the worker API outside a worker: isWorker false, getInitData throws', async () => {
  const w = await import(`${name}/worker`);
  assert.equal(w.isWorker, false);
  assert.equal(w.initData, undefined);
  assert.throws(() => w.getInitData(), { code: 'ERR_NOT_IN_WORKER' });
  assert.throws(() => require(`${name}/worker`).initData, { code: 'ERR_NOT_IN_WORKER' });
  assert.throws(() => w.progress(1), { code: 'ERR_NOT_IN_WORKER' });
});

test('an ES module worker imports progress and getInitData by name', TEST, async (t) => {
  const initData = { salt: 'pepper', n: [1, 2] };
  const { pool, log } = openPool(t, { module: fixture('esm-worker.mjs'), maxWorkers: 1, initData });
  const seen = [];
  const r = await pool.run(3, { name: 'count', onProgress: (v) => seen.push(v) });
  assert.deepEqual(seen, [1, 2, 3]);
  // At the top level: getInitData() throws, the live binding is still undefined.
  assert.deepEqual(r.atTop, { getInitData: 'ERR_INIT_DATA_NOT_READY', initDataUndefined: true });
  // In init() and in a job: the pool's initData, both ways.
  assert.deepEqual(r.inInit, { arg: initData, getInitData: initData, initData });
  assert.deepEqual(r.inJob, { getInitData: initData, initData });
  assert.equal(r.isWorker, true);
  assert.equal(r.same, true, 'the ES module API is the CommonJS one');
  assert.deepEqual(entries(log, 'event').map((e) => [e[1], e[2]]), [['esm-init', initData]]);
});

test('without initData, getInitData() gives null in an ES module worker', TEST, async (t) => {
  const { pool } = openPool(t, { module: fixture('esm-worker.mjs'), maxWorkers: 1 });
  const r = await pool.call('count', 0);
  assert.deepEqual(r.inJob, { getInitData: null, initData: null });
});

test('destructuring initData at the top of a CommonJS worker fails loudly', TEST, async (t) => {
  const { pool } = openPool(t, { module: fixture('init-data-at-top.js'), maxWorkers: 1, initData: 1 });
  const err = await rejectsWith(pool.run(null), 'ERR_WORKER_INIT_FAILED');
  assert.equal(err.cause.code, 'ERR_INIT_DATA_NOT_READY');
  assert.match(err.cause.message, /getInitData\(\) in init\(\) or in a job/);
});

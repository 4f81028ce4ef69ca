// Worker selection (issue 10, item 8): the pool option `strategy`. 'least-busy' (the default)
// gives a job to the first idle worker; 'round-robin' takes the workers in turn; 'random'
// picks by free slots; a function selectWorker(job, workers) names the worker. Proved by
// which worker ran each job, one job at a time, never by timing.
import assert from 'node:assert/strict';
import test from 'node:test';
import {
  TEST, fixture, openPool, waitFor, Pool,
} from './pool-helpers.mjs';

const mod = fixture('groups.js');

// Two warm workers (spawn order); `n` jobs, each submitted once the one before settled: the
// pids that ran them.
async function oneByOne(t, options, n) {
  const { pool } = openPool(t, { module: mod, minWorkers: 2, maxWorkers: 2, ...options });
  await waitFor(() => pool.pids.length === 2, 'two workers');
  const ran = [];
  for (let i = 0; i < n; i++) ran.push(await pool.call('pid'));
  return { pool, ran };
}

test("strategy 'least-busy' (the default): the first idle worker takes every job", TEST, async (t) => {
  const { ran } = await oneByOne(t, {}, 6);
  assert.equal(new Set(ran).size, 1, JSON.stringify(ran));
  const { ran: named } = await oneByOne(t, { strategy: 'least-busy' }, 4);
  assert.equal(new Set(named).size, 1);
});

test("strategy 'round-robin': the workers take jobs in turn", TEST, async (t) => {
  const { ran } = await oneByOne(t, { strategy: 'round-robin' }, 6);
  assert.equal(new Set(ran).size, 2);
  for (let i = 1; i < ran.length; i++) assert.notEqual(ran[i], ran[i - 1], JSON.stringify(ran));
});

test("strategy 'random': both workers take jobs (weighted by free slots)", TEST, async (t) => {
  // 40 jobs on two idle workers: all on one would happen once in 2^39 runs.
  const { ran } = await oneByOne(t, { strategy: 'random' }, 40);
  assert.equal(new Set(ran).size, 2);
});

test('a custom selectWorker(job, workers) chooses the worker, seeing each worker\'s load', TEST, async (t) => {
  const seen = [];
  const strategy = (job, workers) => {
    seen.push({ job, workers: workers.map((w) => ({ ...w })) });
    return workers.length === 2 ? workers[1].pid : undefined;
  };
  const { pool, ran } = await oneByOne(t, { strategy }, 5);
  const second = pool.pids.slice().sort((a, b) => a - b);
  assert.equal(new Set(ran).size, 1, 'every job on the chosen worker');
  assert.ok(second.includes(ran[0]));
  assert.deepEqual(seen[0].job, { name: 'pid', args: [], group: null, priority: 0 });
  assert.deepEqual(Object.keys(seen[0].workers[0]).sort(), ['group', 'inFlight', 'jobsDone', 'pid']);
  assert.equal(seen[4].workers[1].pid, ran[0]);
  assert.equal(seen[4].workers[1].jobsDone, 4);
  // A job holding a worker: its group and its place in flight are shown.
  let pid;
  const gate = pool.exec('gate', ['g'], { group: 'G', priority: 3, onProgress: (p) => { pid = p; } });
  await waitFor(() => pid !== undefined, 'the gate job to start');
  await pool.run('x', { name: 'tag', group: 'H' });
  const last = seen[seen.length - 1];
  assert.deepEqual(last.job, { name: 'tag', args: ['x'], group: 'H', priority: 0 });
  const held = last.workers.find((w) => w.pid === pid);
  assert.deepEqual([held.inFlight, held.group], [1, 'G']);
  process.kill(pid, 'SIGUSR2');
  await gate;
});

test('a selectWorker that throws or names no worker: the default strategy, and a warning', TEST, async (t) => {
  let mode = 'throw';
  const strategy = () => {
    if (mode === 'throw') throw new Error('no idea');
    return mode === 'unknown' ? 1 : undefined;
  };
  const { pool } = openPool(t, { module: mod, maxWorkers: 1, strategy });
  const warnings = [];
  pool.on('warning', (w) => warnings.push(w));
  const pid = await pool.call('pid');
  mode = 'unknown';
  assert.equal(await pool.call('pid'), pid);
  mode = 'none';
  assert.equal(await pool.call('pid'), pid);
  await waitFor(() => warnings.length === 2, 'two warnings');
  assert.match(warnings[0].message, /selectWorker threw: no idea/);
  assert.equal(warnings[0].cause.message, 'no idea');
  assert.match(warnings[1].message, /selectWorker returned 1, not the pid of a worker/);
});

test('bad strategy values: ERR_INVALID_OPTION', TEST, () => {
  for (const strategy of ['fastest', 5, null, {}]) {
    assert.throws(() => new Pool({ module: mod, strategy }), { code: 'ERR_INVALID_OPTION' },
      String(strategy));
  }
});

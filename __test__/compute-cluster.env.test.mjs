// Workers get the parent's environment minus the variables that would make
// them think they are Node `cluster` workers; a cluster runs fine inside a
// Node cluster worker.
import assert from 'node:assert/strict';
import test from 'node:test';
import { Harness, TEST, fixture, killIfAlive, runNode } from './cc-helpers.mjs';

const getenv = fixture('getenv.js');

test("workers inherit the parent's environment, minus NODE_UNIQUE_ID and NODE_WORKER_ID", TEST, async (t) => {
  const set = {
    CC_TEST_PLAIN: 'bar',
    CC_TEST_FANCY: 'spaces, "quotes", ünïcödé ☃ and = signs',
    NODE_UNIQUE_ID: '3',
    NODE_WORKER_ID: '7',
  };
  const saved = Object.fromEntries(Object.keys(set).map((k) => [k, process.env[k]]));
  t.after(() => {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  });
  Object.assign(process.env, set);
  delete process.env.CC_TEST_UNSET;

  const h = new Harness(t, { module: getenv, max_processes: 1 });
  const get = async (key) => {
    const { err, result } = await h.run(key);
    assert.equal(err, null);
    return result;
  };
  assert.deepEqual(await get('CC_TEST_PLAIN'), { key: 'CC_TEST_PLAIN', value: 'bar', has: true });
  assert.deepEqual(await get('CC_TEST_FANCY'), { key: 'CC_TEST_FANCY', value: set.CC_TEST_FANCY, has: true });
  assert.deepEqual(await get('PATH'), { key: 'PATH', value: process.env.PATH, has: true });
  assert.deepEqual(await get('NODE_UNIQUE_ID'), { key: 'NODE_UNIQUE_ID', has: false });
  assert.deepEqual(await get('NODE_WORKER_ID'), { key: 'NODE_WORKER_ID', has: false });
  assert.deepEqual(await get('CC_TEST_UNSET'), { key: 'CC_TEST_UNSET', has: false });
  assert.deepEqual(h.errors, []);
});

test('a compute cluster inside a Node cluster worker runs jobs and strips the cluster variables', TEST, async (t) => {
  const out = await runNode('parent-in-node-cluster.js', { env: { CC_TEST_MARK: 'marked' } });
  t.after(() => {
    for (const l of out.lines) if (l.startsWith('pid ')) killIfAlive(Number(l.slice(4)));
  });
  assert.equal(out.timedOut, false, `the host hung; stdout:\n${out.stdout}\nstderr:\n${out.stderr}`);
  assert.equal(out.code, 0, out.stderr);
  const json = out.lines.find((l) => l.startsWith('{'));
  assert.ok(json, `no report line; stdout:\n${out.stdout}\nstderr:\n${out.stderr}`);
  assert.deepEqual(JSON.parse(json), {
    echoed: 20,
    mismatches: 0,
    envs: {
      NODE_UNIQUE_ID: { key: 'NODE_UNIQUE_ID', has: false },
      NODE_WORKER_ID: { key: 'NODE_WORKER_ID', has: false },
      CC_TEST_MARK: { key: 'CC_TEST_MARK', value: 'marked', has: true },
    },
    errors: [],
  });
  assert.deepEqual(out.lines.filter((l) => l.startsWith('worker exited')), ['worker exited 0 null']);
  assert.equal(out.lines.filter((l) => l.startsWith('pid ')).length, 4, 'cluster worker + 2 echo + 1 getenv');
});

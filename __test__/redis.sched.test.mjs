// Scheduling across machines (issue 13, item 1): priorities across producers, prioritySlots
// over the cluster's slots, queueTimeout and totalTimeout, `key` coalescing across producers.
// Real redis-server, real `comrade worker` processes. The assertions are about order, counts
// and outcomes, never durations: a host holds its jobs because they wait for a GATE file, and
// the test waits for each step it depends on (a job started: its line in the MARK file).
import test from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import {
  Pool, PoolError, codes, startWorkerHost, startRedis, startHost, tempFile, lines, until, redisCli, TASKS, counted,
} from './redis-helpers.mjs';

const T = { timeout: 110000 };
// One slot per host unless told; renewals every lease / 4 (a cancel reaches the host then).
const ONE = ['--workers', '1', '--concurrency', '1', '--lease', '1000', '--poll', '200'];

function producer(t, options) {
  const p = new Pool(options);
  t.after(() => p.terminate());
  return p;
}

const failure = (promise) => promise.then((v) => assert.fail(`resolved with ${JSON.stringify(v)}`), (e) => e);

test('priorities hold across producers: one host of one worker runs the highest first, equal ones in order', T, async (t) => {
  const r = await startRedis(t);
  const mark = tempFile(t, 'marks');
  const p1 = producer(t, { redis: r.url, queue: 'q' });
  const p2 = producer(t, { redis: r.url, queue: 'q', priority: 2 });
  const jobs = [];
  // Queued before any host runs, alternating producers, so that the order is the queue's.
  for (const [p, x, priority] of [[p1, 1, 0], [p2, 2, undefined], [p1, 3, 5], [p2, 4, -1], [p1, 5, 2], [p2, 6, 5]]) {
    const opts = priority === undefined ? {} : { priority };
    jobs.push(p.exec('work', [x], opts));
    await until(async () => (await p1.queueStats()).waiting === jobs.length, `job ${x} queued`);
  }
  const h = startHost(t, { url: r.url, queue: 'q', args: ONE, env: { MARK: mark } });
  await h.ready();
  const out = await Promise.all(jobs);
  assert.deepEqual(out.map((v) => v.v), [2, 4, 6, 8, 10, 12]);
  // p2's default priority (2) ranks its job 2 with p1's job 5 (priority 2), after it in time.
  assert.deepEqual(lines(mark).map(Number), [3, 6, 2, 5, 1, 4]);
});

test('queueTimeout: a job still waiting past it is withdrawn and never runs (ERR_QUEUE_TIMEOUT)', T, async (t) => {
  const r = await startRedis(t);
  const mark = tempFile(t, 'marks');
  const gate = tempFile(t, 'gate');
  const h = startHost(t, { url: r.url, queue: 'q', args: ONE, env: { MARK: mark, GATE: gate } });
  await h.ready();
  const p = producer(t, { redis: r.url, queue: 'q', queueTimeout: 50 });
  // The host's one slot is taken (the gate is closed): the job waits.
  const first = p.exec('work', [1], { queueTimeout: Infinity });
  await until(() => lines(mark).length === 1, 'the first job running');
  const seen = [];
  p.on('queueTimeout', (info) => seen.push(info));
  const e = await failure(p.exec('work', [2]));
  assert.ok(e instanceof PoolError);
  assert.equal(e.code, codes.QUEUE_TIMEOUT);
  assert.equal(e.waitedMs, 50);
  assert.match(e.message, /longer than its queueTimeout: it never ran/);
  assert.deepEqual(seen, [{ name: 'work', waitedMs: 50 }]);
  // A totalTimeout that passes while the job waits withdraws it the same way.
  const et = await failure(p.exec('work', [3], { queueTimeout: Infinity, totalTimeout: 50 }));
  assert.equal(et.code, codes.TOTAL_TIMEOUT);
  assert.equal(et.host, null);
  assert.match(et.message, /totalTimeout \(50 ms\) passed while it waited in the queue: it never ran/);
  // Withdrawn: nothing waits, and once the slot is free neither job runs.
  assert.equal((await p.queueStats()).waiting, 0);
  fs.writeFileSync(gate, '');
  assert.equal((await first).v, 2);
  assert.equal(await p.exec('add', [1, 2], { queueTimeout: Infinity }), 3);
  assert.deepEqual(lines(mark).map(Number), [1]);
  const s = p.stats();
  assert.deepEqual([s.completed, s.failed, s.queueTimedOut, s.totalTimedOut, s.pending], [2, 2, 1, 1, 0]);
  // A job that a host took before its queue deadline runs to the end.
  const slow = await p.exec('work', [3], { queueTimeout: 60000 });
  assert.equal(slow.v, 6);
});

test('totalTimeout: a running job is cancelled on its host (ERR_TOTAL_TIMEOUT naming it); a late result settles nothing', T, async (t) => {
  const r = await startRedis(t);
  const mark = tempFile(t, 'marks');
  const gate = tempFile(t, 'gate');
  const h = startHost(t, {
    url: r.url, queue: 'q', args: [...ONE, '--name', 'host-T'], env: { MARK: mark, GATE: gate },
  });
  await h.ready();
  const p = producer(t, { redis: r.url, queue: 'q' });
  let calls = 0;
  // The deadline must pass while the job runs: a loaded machine may not have started it yet,
  // so the deadline grows until it has (a job withdrawn while waiting never ran).
  let e = null;
  let ms = 300;
  for (let tries = 0; tries < 6; tries++, ms *= 2) {
    calls = 0;
    e = await new Promise((resolve) => {
      p.exec('work', [1], { totalTimeout: ms }).then(() => { calls++; resolve(null); }, (x) => { calls++; resolve(x); });
    });
    assert.ok(e instanceof PoolError, String(e));
    assert.equal(e.code, codes.TOTAL_TIMEOUT);
    if (e.host !== null) break;
    assert.match(e.message, /while it waited in the queue: it never ran/);
  }
  assert.equal(e.host, 'host-T');
  assert.match(e.message, new RegExp(`totalTimeout \\(${ms} ms\\) passed while it ran on worker host host-T: it was cancelled there`));
  await h.waitFor(/was cancelled by its producer: aborting it/, 'the cancel on the host');
  // The slot is free again (the gate is still closed for a job that waits on it).
  assert.equal(await p.call('add', 2, 3), 5);
  fs.writeFileSync(gate, '');
  assert.equal((await p.exec('work', [4])).v, 8);
  assert.equal(calls, 1);
  const s = p.stats();
  assert.deepEqual([s.totalTimedOut === s.failed, s.failed >= 1, s.completed], [true, true, 2]);
  // Validation as Pool's.
  for (const [opts, re] of [
    [{ totalTimeout: 0 }, /options.totalTimeout must be a number of milliseconds > 0, or Infinity/],
    [{ queueTimeout: 'x' }, /options.queueTimeout must be a number of milliseconds > 0/],
    [{ key: '' }, /options.key must be a non-empty string/],
  ]) {
    const x = await failure(p.run(1, opts));
    assert.equal(x.code, codes.INVALID_ARGUMENT);
    assert.match(x.message, re);
  }
  assert.throws(() => new Pool({ redis: r.url, queue: 'q', queueTimeout: -1 }), (x) => x.code === codes.INVALID_OPTION);
});

// Starts two hosts of `slots` slots each on queue `queue` (MARK, GATE shared), waits for them.
async function twoHosts(t, url, queue, mark, gate, slots = 2) {
  const args = ['--workers', '1', '--concurrency', String(slots), '--lease', '1000', '--poll', '200'];
  const a = startHost(t, { url, queue, args, env: { MARK: mark, GATE: gate, HOST_TAG: 'A' } });
  const b = startHost(t, { url, queue, args, env: { MARK: mark, GATE: gate, HOST_TAG: 'B' } });
  await Promise.all([a.ready(), b.ready()]);
}

// The in-flight counts per priority range that the take script keeps, from Redis.
function inflight(port, queue) {
  const flat = redisCli(port, 'HGETALL', `comrade:{${queue}}:inflight`).split('\n').filter(Boolean);
  const out = {};
  for (let i = 0; i + 1 < flat.length; i += 2) out[flat[i]] = Number(flat[i + 1]);
  return out;
}

test('prioritySlots over the cluster: a range takes at most its cap of the live hosts\' slots (cumulative)', T, async (t) => {
  const r = await startRedis(t);
  const mark = tempFile(t, 'marks');
  const gate = tempFile(t, 'gate');
  await twoHosts(t, r.url, 'q', mark, gate);
  // 4 slots over two hosts; {1: 1, 2: 1}: the lowest range has 2, [1, 2) up to 3, >= 2 up to 4.
  const p = producer(t, { redis: r.url, queue: 'q', prioritySlots: { 1: 1, 2: 1 } });
  const jobs = [];
  for (let i = 0; i < 4; i++) jobs.push(p.exec('work', [100 + i], { priority: 1 }));
  for (let i = 0; i < 4; i++) jobs.push(p.exec('work', [i], { priority: 0 }));
  // Every slot is taken: [1, 2) stops at its cap (3), so a lower job has the fourth.
  await until(() => lines(mark).length === 4, 'the 4 slots taken');
  const started = lines(mark).map(Number);
  assert.equal(started.filter((x) => x >= 100).length, 3, String(started));
  assert.equal(started.filter((x) => x < 100).length, 1, String(started));
  assert.deepEqual(inflight(r.port, 'q'), { 0: 1, 1: 3 });
  assert.deepEqual(counted(await p.queueStats()), { waiting: 4, running: 4, dead: 0 });
  fs.writeFileSync(gate, '');
  const out = await Promise.all(jobs);
  assert.deepEqual(out.map((v) => v.v / 2), [100, 101, 102, 103, 0, 1, 2, 3]);
  // Every count went back to nothing.
  assert.deepEqual(inflight(r.port, 'q'), {});
});

test('prioritySlots with sacredGuarantees: a higher range borrows only from the lowest; one queue has one policy', T, async (t) => {
  const r = await startRedis(t);
  const mark = tempFile(t, 'marks');
  const gate = tempFile(t, 'gate');
  await twoHosts(t, r.url, 'q', mark, gate);
  // 4 slots; {1: 1, 2: 1} sacred: >= 2 up to 3 (its 1 and the lowest range's 2): the fourth
  // slot stays for [1, 2), though jobs >= 2 wait.
  const options = { redis: r.url, queue: 'q', prioritySlots: { 1: 1, 2: 1 }, sacredGuarantees: true };
  const p = producer(t, options);
  const jobs = [];
  for (let i = 0; i < 4; i++) jobs.push(p.exec('work', [500 + i], { priority: 5 }));
  for (let i = 0; i < 4; i++) jobs.push(p.exec('work', [100 + i], { priority: 1 }));
  await until(() => lines(mark).length === 4, 'the 4 slots taken');
  const started = lines(mark).map(Number);
  assert.equal(started.filter((x) => x >= 500).length, 3, String(started));
  assert.equal(started.filter((x) => x >= 100 && x < 500).length, 1, String(started));
  assert.deepEqual(inflight(r.port, 'q'), { 1: 1, 2: 3 });
  // Another producer of the queue with another policy: refused, naming the queue's.
  const other = producer(t, { ...options, sacredGuarantees: false });
  const e = await failure(other.call('add', 1, 1));
  assert.equal(e.code, codes.INVALID_OPTION);
  assert.match(e.message, /has another priority policy \(prioritySlots \{"1":1,"2":1\}, sacredGuarantees true\)/);
  // One with the same policy, or none, shares it.
  const same = producer(t, options);
  const none = producer(t, { redis: r.url, queue: 'q' });
  const more = [same.call('add', 1, 2), none.call('add', 2, 2)];
  fs.writeFileSync(gate, '');
  assert.deepEqual(await Promise.all(more), [3, 4]);
  assert.equal((await Promise.all(jobs)).length, 8);
  assert.deepEqual(inflight(r.port, 'q'), {});
});

test('key coalescing across producers: one execution, every caller gets its own copy of the result', T, async (t) => {
  const r = await startRedis(t);
  const mark = tempFile(t, 'marks');
  const gate = tempFile(t, 'gate');
  const h = startHost(t, { url: r.url, queue: 'q', args: ONE, env: { MARK: mark, GATE: gate } });
  await h.ready();
  const p1 = producer(t, { redis: r.url, queue: 'q' });
  const p2 = producer(t, { redis: r.url, queue: 'q' });
  const a = p1.exec('work', [7], { key: 'k' });
  await until(() => lines(mark).length === 1, 'the shared job running');
  // While it runs: p2 joins it, and so does another caller of p1; another key, or another
  // function with the same key, is a job of its own (it waits for the one slot).
  const b = p2.exec('work', [8], { key: 'k' });
  const c = p1.exec('work', [9], { key: 'k' });
  const d = p2.exec('work', [10], { key: 'other' });
  const e = p2.exec('add', [1, 2], { key: 'k' });
  await until(() => p1.stats().coalesced === 1 && p2.stats().coalesced === 1, 'the callers joined');
  fs.writeFileSync(gate, '');
  const [va, vb, vc, vd, ve] = await Promise.all([a, b, c, d, e]);
  assert.deepEqual([va, vb, vc], [{ v: 14, host: '' }, { v: 14, host: '' }, { v: 14, host: '' }]);
  assert.notEqual(va, vc); // each its own copy
  assert.deepEqual([vd.v, ve], [20, 3]);
  assert.deepEqual(lines(mark).map(Number).sort((x, y) => x - y), [7, 10]);
  // The shared job is over: the same key runs anew.
  assert.equal((await p2.exec('work', [11], { key: 'k' })).v, 22);
  // Errors are shared too, each caller its own Error: two callers of one producer, in one tick.
  const h2 = await startWorkerHost({ redis: r.url, queue: 'q2', module: TASKS, workers: 1 });
  t.after(() => h2.close());
  const q = producer(t, { redis: r.url, queue: 'q2' });
  const [e1, e2] = await Promise.all([
    failure(q.exec('fail', ['shared'], { key: 'f' })), failure(q.exec('fail', ['not run'], { key: 'f' })),
  ]);
  assert.ok(e1 instanceof RangeError && e2 instanceof RangeError);
  assert.deepEqual([e1.message, e2.message, e2.extra], ['shared', 'shared', 42]);
  assert.notEqual(e1, e2);
  assert.equal(q.stats().coalesced, 1);
  assert.equal(h2.stats().taken, 1);
});

test('a caller that aborts leaves a shared job alone; the job is cancelled once every caller has gone', T, async (t) => {
  const r = await startRedis(t);
  const mark = tempFile(t, 'marks');
  const gate = tempFile(t, 'gate');
  const h = startHost(t, { url: r.url, queue: 'q', args: ONE, env: { MARK: mark, GATE: gate } });
  await h.ready();
  const p1 = producer(t, { redis: r.url, queue: 'q' });
  const p2 = producer(t, { redis: r.url, queue: 'q' });
  // 1. A joiner aborts: it rejects alone, the job goes on for its first caller.
  const a = p1.exec('work', [1], { key: 'k' });
  await until(() => lines(mark).length === 1, 'the shared job running');
  const ac = new AbortController();
  const b = failure(p2.exec('work', [2], { key: 'k', signal: ac.signal }));
  await until(() => p2.stats().coalesced === 1, 'p2 joined');
  ac.abort();
  assert.equal((await b).name, 'AbortError');
  fs.writeFileSync(gate, '');
  assert.deepEqual(await a, { v: 2, host: '' });
  fs.rmSync(gate);
  // 2. The first caller aborts: the job goes on for the caller that joined it.
  const ac1 = new AbortController();
  const c = failure(p1.exec('work', [3], { key: 'j', signal: ac1.signal }));
  await until(() => lines(mark).length === 2, 'the second shared job running');
  const d = p2.exec('work', [4], { key: 'j' });
  await until(() => p2.stats().coalesced === 2, 'p2 joined the second');
  ac1.abort();
  assert.equal((await c).name, 'AbortError');
  fs.writeFileSync(gate, '');
  assert.deepEqual(await d, { v: 6, host: '' });
  assert.doesNotMatch(h.out, /cancelled by its producer/);
  fs.rmSync(gate);
  // 3. Every caller aborts: the shared job is cancelled on its host.
  const ac3 = new AbortController();
  const ac4 = new AbortController();
  const e = failure(p1.exec('work', [5], { key: 'm', signal: ac3.signal }));
  await until(() => lines(mark).length === 3, 'the third shared job running');
  const f = failure(p2.exec('work', [6], { key: 'm', signal: ac4.signal }));
  await until(() => p2.stats().coalesced === 3, 'p2 joined the third');
  ac3.abort();
  ac4.abort();
  assert.deepEqual([(await e).name, (await f).name], ['AbortError', 'AbortError']);
  await h.waitFor(/was cancelled by its producer: aborting it/, 'the cancel on the host');
  // Every caller gone: the key's next job is a new one.
  fs.writeFileSync(gate, '');
  assert.deepEqual(await p2.exec('work', [7], { key: 'm' }), { v: 14, host: '' });
  assert.deepEqual(lines(mark).map(Number), [1, 3, 5, 7]);
  assert.equal((h.out.match(/was cancelled by its producer/g) || []).length, 1);
});

test('a caller that joined leaves by its own timeout or its totalTimeout; the shared job goes on', T, async (t) => {
  const r = await startRedis(t);
  const mark = tempFile(t, 'marks');
  const gate = tempFile(t, 'gate');
  const h = startHost(t, { url: r.url, queue: 'q', args: ONE, env: { MARK: mark, GATE: gate } });
  await h.ready();
  const p1 = producer(t, { redis: r.url, queue: 'q' });
  const p2 = producer(t, { redis: r.url, queue: 'q' });
  const a = p1.exec('work', [1], { key: 'k' });
  await until(() => lines(mark).length === 1, 'the shared job running');
  const own = await failure(p2.exec('work', [2], { key: 'k', timeout: 50 }));
  assert.equal(own.code, codes.JOB_TIMEOUT);
  assert.match(own.message, /waited longer than its timeout \(50 ms\) for the shared job of its key/);
  const total = await failure(p2.exec('work', [3], { key: 'k', totalTimeout: 50 }));
  assert.equal(total.code, codes.TOTAL_TIMEOUT);
  assert.match(total.message, /while it shared the job of its key; the shared job goes on for its other callers/);
  assert.equal(p2.stats().coalesced, 2);
  fs.writeFileSync(gate, '');
  assert.deepEqual(await a, { v: 2, host: '' });
  assert.deepEqual(lines(mark).map(Number), [1]);
  assert.doesNotMatch(h.out, /cancelled by its producer/);
});

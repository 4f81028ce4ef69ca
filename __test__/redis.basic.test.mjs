// A queue on Redis: producers (new Pool({ redis, queue })) and worker hosts against a real
// redis-server. Results, errors, options refused, sizes, credentials.
import test from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import {
  Pool, PoolError, codes, startWorkerHost, startRedis, startHost, until, redisCli, TASKS, BIN, counted,
} from './redis-helpers.mjs';

const T = { timeout: 110000 };

async function host(t, url, queue, extra = {}) {
  const h = await startWorkerHost({ redis: url, queue, module: TASKS, workers: 2, concurrency: 2, poll: 200, ...extra });
  t.after(() => h.close());
  return h;
}

function producer(t, options) {
  const p = new Pool(options);
  t.after(() => p.terminate());
  return p;
}

test('a producer is a Pool; run, call, exec and enqueue come back right, to this producer only', T, async (t) => {
  const r = await startRedis(t);
  await host(t, r.url, 'q');
  const p1 = producer(t, { redis: r.url, queue: 'q' });
  const p2 = producer(t, { redis: r.url, queue: 'q' });
  assert.ok(p1 instanceof Pool);
  const [a, b, c, d] = await Promise.all([
    p1.run(21, { name: 'double' }), p1.call('add', 2, 3), p1.exec('add', [40, 2]), p2.call('add', 1, 1),
  ]);
  assert.deepEqual([a, b, c, d], [42, 5, 42, 2]);
  const e = await new Promise((resolve) => { p1.enqueue(4, (err, v) => resolve([err, v])); });
  // The default function: the fixture has none, so the worker says so.
  assert.equal(e[0].code, codes.UNKNOWN_FUNCTION);
  // Each producer got exactly its own results (the unknown function is an error the worker
  // raised: errored, as in Pool).
  const counts = (s) => [s.queue, s.workers.length, s.queued, s.pending, s.completed, s.errored, s.failed, s.rejected];
  assert.deepEqual(counts(p1.stats()), ['q', 0, 0, 0, 3, 1, 0, 0]);
  assert.deepEqual(counts(p2.stats()), ['q', 0, 0, 0, 1, 0, 0, 0]);
  assert.ok(p1.stats().throughput > 0);
  assert.deepEqual(counted(await p1.queueStats()), { waiting: 0, running: 0, dead: 0 });
});

test('a job\'s error comes back as an Error of its class, with its properties and the host', T, async (t) => {
  const r = await startRedis(t);
  const h = await host(t, r.url, 'q', { name: 'host-one' });
  const p = producer(t, { redis: r.url, queue: 'q' });
  const err = await p.call('fail', 'nope').then(() => assert.fail('resolved'), (x) => x);
  assert.ok(err instanceof RangeError);
  assert.equal(err.message, 'nope');
  assert.equal(err.code, 'E_TASK');
  assert.equal(err.extra, 42);
  assert.equal(err.host, 'host-one');
  assert.equal(h.name, 'host-one');
  // A timeout on the host: a PoolError again at the producer.
  const slow = await p.run(1, { name: 'work', timeout: 1 }).then(() => null, (x) => x);
  // (1 ms is usually too short; a fast machine may finish first: both are right answers.)
  if (slow !== null) {
    assert.ok(slow instanceof PoolError);
    assert.equal(slow.code, codes.JOB_TIMEOUT);
  }
});

test('priorities: a host takes the highest priority first, equal ones in order', T, async (t) => {
  const r = await startRedis(t);
  const p = producer(t, { redis: r.url, queue: 'q' });
  const order = [];
  const jobs = [];
  // Queued before any host runs, so that the order is the queue's alone.
  for (const [x, priority] of [[1, 0], [2, 0], [3, 5], [4, -1], [5, 5]]) {
    jobs.push(p.run(x, { name: 'work', priority }).then((v) => order.push(v.v / 2)));
  }
  await until(async () => (await p.queueStats()).waiting === 5, 'the 5 jobs queued');
  await host(t, r.url, 'q', { workers: 1, concurrency: 1 });
  await Promise.all(jobs);
  assert.deepEqual(order, [3, 5, 1, 2, 4]);
});

test('options a producer cannot honour are refused, naming what it takes', T, async () => {
  const url = 'redis://127.0.0.1:1';
  for (const [opts, re] of [
    [{ redis: url, queue: 'q', module: TASKS }, /"module" is not supported with `redis`.*worker hosts/],
    [{ redis: url, queue: 'q', maxWorkers: 2 }, /"maxWorkers" is not supported with `redis`/],
    [{ redis: url, queue: 'q', selectWorker: () => 0 }, /"selectWorker" is not supported with `redis`: a function cannot choose/],
    [{ redis: url, queue: 'q', queu: 1 }, /unknown option "queu" \(did you mean queue\?\)/],
    [{ redis: url }, /needs `queue`/],
    [{ redis: 'http://x', queue: 'q' }, /must start with redis:\/\//],
    [{ redis: url, queue: 'a{b}' }, /without braces/],
  ]) {
    assert.throws(() => new Pool(opts), (e) => e.code === codes.INVALID_OPTION && re.test(e.message), re.source);
  }
  const p = new Pool({ redis: url, queue: 'q' });
  for (const [opts, re] of [
    [{ onProgress: 1 }, /options.onProgress must be a function/],
    [{ retries: -1 }, /retries must be an integer/],
    [{ signal: {} }, /options.signal must be an AbortSignal/],
    [{ signal: AbortSignal.abort('early') }, /the job was aborted/],
  ]) {
    const e = await p.run(1, opts).then(() => null, (x) => x);
    assert.match(e.message, re);
  }
  await p.close();
});

test('payloads over maxMessage are refused at the producer and at the host', T, async (t) => {
  const r = await startRedis(t);
  await host(t, r.url, 'q', { maxMessage: 1000 });
  const p = producer(t, { redis: r.url, queue: 'q', maxMessage: 2000 });
  const big = await p.run('y'.repeat(3000), { name: 'double' }).then(() => null, (x) => x);
  assert.equal(big.code, codes.MESSAGE_TOO_LARGE);
  assert.match(big.message, /more than maxMessage \(2000\)/);
  // Arguments within the producer's limit, over the host's.
  const args = await p.call('add', 'y'.repeat(1500), 'z').then(() => null, (x) => x);
  assert.equal(args.code, codes.MESSAGE_TOO_LARGE);
  assert.match(args.message, /worker host's maxMessage \(1000\)/);
  // A result over the host's limit.
  const res = await p.call('big', 1200).then(() => null, (x) => x);
  assert.equal(res.code, codes.MESSAGE_TOO_LARGE);
  assert.equal(await p.call('big', 3), 'xxx');
  assert.equal(p.stats().rejected, 1);
});

test('a wrong password: a clear ERR_REDIS without the password, at the producer and the host', T, async (t) => {
  const secret = 'pa55-Secret-word';
  const r = await startRedis(t, { password: secret });
  const wrong = r.url.replace(encodeURIComponent(secret), 'wrong-Pass-word');
  const p = producer(t, { redis: wrong, queue: 'q' });
  const e = await p.call('add', 1, 2).then(() => null, (x) => x);
  assert.equal(e.code, codes.REDIS);
  assert.match(e.message, /authentication failed/i);
  assert.ok(!e.message.includes('wrong-Pass-word') && !e.message.includes(secret), e.message);
  assert.ok(!JSON.stringify(e).includes('wrong-Pass-word'));
  assert.match(e.message, /redis:\/\/:\*\*\*@127\.0\.0\.1/);
  await assert.rejects(startWorkerHost({ redis: wrong, queue: 'q', module: TASKS, workers: 1 }),
    (x) => x.code === codes.REDIS && /authentication failed/i.test(x.message) && !x.message.includes('wrong-Pass-word'));
  // The command line: exits 1, saying why, without the password.
  const h = startHost(t, { url: wrong, queue: 'q' });
  const { code } = await h.exited;
  assert.equal(code, 1);
  assert.match(h.out, /authentication failed/i);
  assert.ok(!h.out.includes('wrong-Pass-word'), h.out);
  // The right password works.
  await host(t, r.url, 'q');
  const ok = producer(t, { redis: r.url, queue: 'q' });
  assert.equal(await ok.call('add', 1, 2), 3);
});

test('comrade --help and comrade worker --help document every flag', T, () => {
  const main = spawnSync(process.execPath, [BIN, '--help'], { encoding: 'utf8' });
  assert.equal(main.status, 0);
  assert.match(main.stdout, /worker\s+run a worker host/);
  const w = spawnSync(process.execPath, [BIN, 'worker', '--help'], { encoding: 'utf8' });
  assert.equal(w.status, 0);
  for (const flag of ['--redis', '--queue', '--module', '--command', '--workers', '--concurrency',
    '--lease', '--poll', '--max-message', '--tls-ca', '--tls-cert', '--tls-key', '--init-data', '--name', '--quiet',
    'COMRADE_REDIS_URL', 'SIGTERM']) {
    assert.ok(w.stdout.includes(flag), flag);
  }
  const bad = spawnSync(process.execPath, [BIN, 'worker', '--queue', 'q'], { encoding: 'utf8', env: { PATH: process.env.PATH } });
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /--redis URL \(or COMRADE_REDIS_URL\) is required/);
});

test('maxBacklog holds across two producers: jobs past it are refused with ERR_BACKLOG_FULL', T, async (t) => {
  const r = await startRedis(t);
  const p1 = producer(t, { redis: r.url, queue: 'q', maxBacklog: 3 });
  const p2 = producer(t, { redis: r.url, queue: 'q', maxBacklog: 3 });
  // No host yet: the jobs wait. p1's two are admitted first (awaited), then p2's three.
  const first = [p1.call('add', 1, 1), p1.call('add', 2, 2)];
  await until(async () => (await p1.queueStats()).waiting === 2, 'p1\'s jobs queued');
  const second = [p2.call('add', 3, 3), p2.call('add', 4, 4), p2.call('add', 5, 5)].map((j) => j.then((v) => v, (e) => e));
  const refused = await second[1];
  assert.equal(refused.code, codes.BACKLOG_FULL);
  assert.equal(refused.maxBacklog, 3);
  assert.match(refused.message, /backlog is full \(3 jobs waiting, from every producer\)/);
  assert.equal((await second[2]).code, codes.BACKLOG_FULL);
  assert.equal(p2.stats().rejected, 2);
  assert.equal((await p2.queueStats()).waiting, 3);
  await host(t, r.url, 'q');
  assert.deepEqual(await Promise.all([...first, second[0]]), [2, 4, 6]);
  // Room again.
  assert.equal(await p2.call('add', 6, 6), 12);
});

test('aborting a queued job withdraws it from the queue', T, async (t) => {
  const r = await startRedis(t);
  const p = producer(t, { redis: r.url, queue: 'q' });
  const ac = new AbortController();
  const job = p.call('add', 1, 1);
  const aborted = p.exec('add', [2, 2], { signal: ac.signal }).then(() => null, (e) => e);
  await until(async () => (await p.queueStats()).waiting === 2, 'both jobs queued');
  ac.abort('no longer needed');
  const e = await aborted;
  assert.equal(e.name, 'AbortError');
  assert.equal(e.code, codes.ABORTED);
  assert.equal(e.cause, 'no longer needed');
  await until(async () => (await p.queueStats()).waiting === 1, 'the aborted job withdrawn');
  assert.equal(p.stats().aborted, 1);
  await host(t, r.url, 'q');
  assert.equal(await job, 2);
});

test('ACL users: a user and password in the URL; a user without access to the queue\'s keys gets a clear error', T, async (t) => {
  const r = await startRedis(t);
  redisCli(r.port, 'ACL', 'SETUSER', 'alice', 'on', '>al1ce-Pw', '~comrade:*', '&*', '+@all');
  redisCli(r.port, 'ACL', 'SETUSER', 'bob', 'on', '>b0b-Pw', '~other:*', '&*', '+@all');
  const as = (user, pw) => r.url.replace('redis://', `redis://${user}:${pw}@`);
  await host(t, as('alice', 'al1ce-Pw'), 'q');
  const p = producer(t, { redis: as('alice', 'al1ce-Pw'), queue: 'q' });
  assert.equal(await p.call('add', 20, 22), 42);
  const wrong = producer(t, { redis: as('alice', 'not-her-Pw'), queue: 'q' });
  const e1 = await wrong.call('add', 1, 1).then(() => null, (x) => x);
  assert.equal(e1.code, codes.REDIS);
  assert.match(e1.message, /authentication failed/i);
  assert.match(e1.message, /redis:\/\/alice:\*\*\*@127\.0\.0\.1/);
  assert.ok(!e1.message.includes('not-her-Pw'), e1.message);
  const bob = producer(t, { redis: as('bob', 'b0b-Pw'), queue: 'q' });
  const e2 = await bob.call('add', 1, 1).then(() => null, (x) => x);
  assert.equal(e2.code, codes.REDIS);
  assert.match(e2.message, /no permissions to access one of the keys/);
  assert.ok(!e2.message.includes('b0b-Pw'), e2.message);
});

test('onProgress: a job\'s progress reports reach its producer, in order, before its result', T, async (t) => {
  const r = await startRedis(t);
  await host(t, r.url, 'q');
  const p = producer(t, { redis: r.url, queue: 'q' });
  const seen = [];
  const [a, b] = await Promise.all([
    p.exec('counting', [3], { onProgress: (v) => seen.push(['a', v.i]) }).then((v) => { seen.push(['a', 'done']); return v; }),
    p.run(2, { name: 'counting', onProgress: (v) => seen.push(['b', v.i]) }).then((v) => { seen.push(['b', 'done']); return v; }),
    // No onProgress: its reports are not sent at all.
    p.call('counting', 4),
  ]);
  assert.deepEqual([a, b], [3, 2]);
  assert.deepEqual(seen.filter((s) => s[0] === 'a'), [['a', 1], ['a', 2], ['a', 3], ['a', 'done']]);
  assert.deepEqual(seen.filter((s) => s[0] === 'b'), [['b', 1], ['b', 2], ['b', 'done']]);
});

test('a producer refuses what is not carried across machines yet: needsDrain, drainThreshold; map\'s finishBy', T, async (t) => {
  // No server is needed: nothing is sent.
  const p = producer(t, { redis: 'redis://127.0.0.1:9', queue: 'refusals' });
  await assert.rejects(p.map([1, 2], { finishBy: Date.now() + 1000 }), (e) => e instanceof PoolError &&
    e.code === codes.INVALID_OPTION && /no meaning across machines/.test(e.message));
  assert.throws(() => p.needsDrain, { name: 'PoolError', code: codes.INVALID_OPTION });
  assert.throws(() => p.drainThreshold, { name: 'PoolError', code: codes.INVALID_OPTION });
  assert.equal(p.burstWorkers, 0);
});

// The Redis calls' runtime is made by the first of them: a process with local pools only has
// no threads for it (they were two idle threads in every process that loaded the addon).
test('a local pool starts no Redis runtime; the first Redis call does', { ...T, skip: process.platform !== 'linux' }, async (t) => {
  const r = await startRedis(t);
  const script = `
    const fs = require('node:fs');
    const threads = () => fs.readdirSync('/proc/self/task')
      .map((id) => fs.readFileSync('/proc/self/task/' + id + '/comm', 'utf8').trim());
    const { Pool } = require('.');
    (async () => {
      const pool = new Pool({ module: ${JSON.stringify(TASKS)}, maxWorkers: 1 });
      await pool.call('add', 1, 2);
      const local = threads();
      const producer = new Pool({ redis: process.argv[1], queue: 'q' });
      await producer.queueStats();
      const remote = threads();
      await producer.terminate();
      await pool.terminate();
      console.log(JSON.stringify({ local, remote }));
    })();`;
  const out = spawnSync(process.execPath, ['-e', script, r.url], {
    cwd: new URL('..', import.meta.url), encoding: 'utf8', timeout: 60000,
  });
  assert.equal(out.status, 0, out.stderr);
  const { local, remote } = JSON.parse(out.stdout.trim().split('\n').pop());
  assert.ok(local.includes('comrade-io'), local.join());
  assert.deepEqual(local.filter((n) => /redis|tokio/.test(n)), []);
  assert.ok(remote.includes('comrade-redis'), remote.join());
});

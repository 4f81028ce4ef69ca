// Worker hosts against a real redis-server: a native (command) worker host, connections
// dropped while jobs run, a malformed entry written by something else, and a host started from
// code.
import test from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  Pool, codes, startWorkerHost, startRedis, startHost, tempFile, lines, until, redisCli, makeCerts, TASKS, counted,
} from './redis-helpers.mjs';

const T = { timeout: 110000 };
const root = path.dirname(path.dirname(fileURLToPath(import.meta.url)));
const PYTHON_WORKER = path.join(root, 'examples', 'python', 'worker.py');

function producer(t, options) {
  const p = new Pool(options);
  t.after(() => p.terminate());
  return p;
}

test('comrade worker --command: a native (Python) worker host runs the queue\'s jobs', T, async (t) => {
  const r = await startRedis(t);
  const h = startHost(t, { url: r.url, queue: 'py', command: ['python3', PYTHON_WORKER], args: ['--workers', '2'] });
  await h.ready();
  const p = producer(t, { redis: r.url, queue: 'py' });
  const got = await Promise.all([p.call('add', 2, 3), p.call('upper', 'abc'), p.exec('add', [1, 1])]);
  assert.deepEqual(got, [5, 'ABC', 2]);
  const e = await p.call('fail', 'py says no').then(() => null, (x) => x);
  assert.ok(e instanceof Error);
  assert.match(e.message, /py says no/);
  assert.equal(typeof e.host, 'string');
});

test('connections dropped while jobs run (Redis keeps its state): the host reconnects, every job settles right', T, async (t) => {
  const r = await startRedis(t);
  const mark = tempFile(t, 'a.marks');
  const gate = tempFile(t, 'a.gate');
  const a = startHost(t, {
    url: r.url, queue: 'q', args: ['--workers', '1', '--concurrency', '2', '--poll', '200'],
    env: { HOST_TAG: 'A', MARK: mark, GATE: gate },
  });
  await a.ready();
  const p = producer(t, { redis: r.url, queue: 'q' });
  const jobs = Array.from({ length: 6 }, (_, i) => p.call('work', i).then((v) => v, (e) => e));
  await until(() => lines(mark).length === 2, 'host A running 2 jobs');
  // Every client connection is closed by the server: the host's, the producer's.
  assert.ok(Number(redisCli(r.port, 'CLIENT', 'KILL', 'TYPE', 'normal')) >= 2);
  // The jobs in flight finish after the drop, and their results are written once the host
  // has reconnected.
  fs.writeFileSync(gate, '');
  const out = await Promise.all(jobs);
  for (let i = 0; i < 6; i++) assert.deepEqual(out[i], { v: 2 * i, host: 'A' }, String(out[i] && out[i].message));
  assert.deepEqual(counted(await p.queueStats()), { waiting: 0, running: 0, dead: 0 });
});

test('a malformed entry written by something else goes to the dead-letter stream; the host goes on', T, async (t) => {
  const r = await startRedis(t);
  const h = await startWorkerHost({ redis: r.url, queue: 'q', module: TASKS, workers: 1, poll: 100 });
  t.after(() => h.close());
  const p = producer(t, { redis: r.url, queue: 'q' });
  assert.equal(await p.call('add', 1, 2), 3);
  redisCli(r.port, 'XADD', 'comrade:{q}:stream', '*', 'junk', 'data');
  await until(() => h.stats().dead === 1, 'the entry dead-lettered');
  const dead = redisCli(r.port, 'XRANGE', 'comrade:{q}:dead', '-', '+');
  assert.match(dead, /not a comrade job entry \(no field j\)/);
  assert.match(dead, /junk/);
  assert.equal(await p.call('add', 2, 2), 4);
  assert.equal((await p.queueStats()).dead, 1);
});

test('startWorkerHost from code: options checked, events, a graceful close', T, async (t) => {
  await assert.rejects(startWorkerHost({ redis: 'redis://x:1', queue: 'q', module: TASKS, workerz: 1 }),
    /unknown worker host option "workerz" \(did you mean workers\?\)/);
  await assert.rejects(startWorkerHost({ redis: 'redis://x:1', queue: 'q' }),
    (e) => e.code === codes.INVALID_OPTION && /exactly one of `module`/.test(e.message));
  const r = await startRedis(t);
  const h = await startWorkerHost({ redis: r.url, queue: 'q', module: TASKS, workers: 1, concurrency: 3, name: 'code-host' });
  const seen = [];
  h.on('job', ({ job }) => seen.push(['job', job]));
  h.on('result', ({ job, accepted }) => seen.push(['result', job, accepted]));
  assert.equal(h.slots, 3);
  const p = producer(t, { redis: r.url, queue: 'q' });
  assert.equal(await p.call('double', 21), 42);
  await h.close();
  assert.deepEqual(seen.map((s) => s[0]), ['job', 'result']);
  assert.equal(seen[1][2], true);
  assert.equal(seen[0][1], seen[1][1]);
  assert.deepEqual(h.stats(), { name: 'code-host', running: 0, slots: 3, taken: 1, completed: 1, dropped: 0, lost: 0, cancelled: 0, failed: 0, dead: 0 });
  // It left the group: the queue holds no consumer of it.
  assert.doesNotMatch(redisCli(r.port, 'XINFO', 'CONSUMERS', 'comrade:{q}:stream', 'hosts'), /code-host/);
});

test('aborting a job that runs on another host: it rejects at once and is cancelled on that host', T, async (t) => {
  const r = await startRedis(t);
  const mark = tempFile(t, 'a.marks');
  const gate = tempFile(t, 'a.gate'); // opened at the end: until then a job runs on
  // One slot, and a short lease: the host renews (and finds the cancel) every 250 ms.
  const a = startHost(t, {
    url: r.url, queue: 'q', args: ['--workers', '1', '--concurrency', '1', '--lease', '1000', '--poll', '200'],
    env: { HOST_TAG: 'A', MARK: mark, GATE: gate },
  });
  await a.ready();
  const p = producer(t, { redis: r.url, queue: 'q' });
  const ac = new AbortController();
  const running = p.exec('work', [5], { signal: ac.signal }).then(() => null, (e) => e);
  await until(() => lines(mark).length === 1, 'the host running the job');
  // The next job waits behind it, for the one slot.
  const next = p.call('work', 1);
  await until(async () => (await p.queueStats()).waiting === 1, 'the next job queued');
  ac.abort();
  const e = await running;
  assert.equal(e.name, 'AbortError');
  assert.equal(p.stats().aborted, 1);
  await a.waitFor(/was cancelled by its producer: aborting it/, 'the cancel on the host');
  // The slot is free again: the next job starts while the gate is still closed.
  await until(() => lines(mark).length === 2, 'the next job started on the freed slot');
  assert.deepEqual(lines(mark).map(Number), [5, 1]);
  fs.writeFileSync(gate, '');
  assert.deepEqual(await next, { v: 2, host: 'A' });
});

test('TLS: a producer and hosts (from code and from the command line) on a rediss:// Redis that asks for client certificates', T, async (t) => {
  const certs = makeCerts(t);
  const r = await startRedis(t, { tls: certs });
  assert.match(r.url, /^rediss:\/\//);
  const h = await startWorkerHost({ redis: r.url, tls: certs.pem, queue: 'q', module: TASKS, workers: 1 });
  t.after(() => h.close());
  const cli = startHost(t, {
    url: r.url, queue: 'q',
    args: ['--workers', '1', '--tls-ca', certs.files.ca, '--tls-cert', certs.files.clientCert, '--tls-key', certs.files.clientKey],
  });
  await cli.ready();
  const p = producer(t, { redis: r.url, tls: { ca: Buffer.from(certs.pem.ca), cert: certs.pem.cert, key: certs.pem.key }, queue: 'q' });
  const got = await Promise.all(Array.from({ length: 20 }, (_, i) => p.call('add', i, 1)));
  assert.deepEqual(got, Array.from({ length: 20 }, (_, i) => i + 1));
  assert.equal((await p.queueStats()).running, 0);
  // Without a client certificate the server refuses: a clear ERR_REDIS, no key material in it.
  const bare = producer(t, { redis: r.url, tls: { ca: certs.pem.ca }, queue: 'q' });
  const e = await bare.call('add', 1, 1).then(() => null, (x) => x);
  assert.equal(e.code, codes.REDIS);
  assert.ok(!e.message.includes('PRIVATE KEY'), e.message);
  // Options checked before any connection.
  for (const [opts, re] of [
    [{ redis: 'redis://127.0.0.1:1', tls: { ca: 'x' } }, /tls needs a rediss:\/\/ URL/],
    [{ redis: r.url, tls: { cert: 'x' } }, /tls.cert and tls.key go together/],
    [{ redis: r.url, tls: { ca: 1 } }, /tls.ca must be PEM text/],
    [{ redis: r.url, tls: { pem: 'x' } }, /unknown tls option "pem"/],
  ]) {
    assert.throws(() => new Pool({ ...opts, queue: 'q' }), (x) => x.code === codes.INVALID_OPTION && re.test(x.message), re.source);
  }
});

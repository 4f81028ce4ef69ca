// pool.broadcast(message) on a queue on Redis: a real redis-server and real `comrade worker`
// host processes. The message reaches every worker of every live host; a host SIGKILLed while
// the broadcast waits for it stops counting once its lease runs out (never a hang).
import test from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Pool, codes, startRedis, startHost, tempFile, lines, until } from './redis-helpers.mjs';

const T = { timeout: 110000 };
const here = path.dirname(fileURLToPath(import.meta.url));
const MODULE = path.join(here, 'fixtures', 'redis', 'broadcast.js');

function producer(t, options) {
  const p = new Pool(options);
  t.after(() => p.terminate());
  return p;
}

/** The handlers' marks: [tag, pid, message] per line. */
function marks(file) {
  return lines(file).map((l) => {
    const [tag, pid, ...rest] = l.split(' ');
    return [tag, Number(pid), JSON.parse(rest.join(' '))];
  });
}

test('a broadcast reaches every worker of two hosts: the count is their workers in all', T, async (t) => {
  const redis = await startRedis(t);
  const mark = tempFile(t, 'marks');
  const a = startHost(t, { url: redis.url, queue: 'bq', module: MODULE, args: ['--workers', '2', '--concurrency', '2'], env: { HOST_TAG: 'A', BCAST_MARK: mark } });
  const b = startHost(t, { url: redis.url, queue: 'bq', module: MODULE, args: ['--workers', '3'], env: { HOST_TAG: 'B', BCAST_MARK: mark } });
  await Promise.all([a.ready(), b.ready()]);
  const p = producer(t, { redis: redis.url, queue: 'bq' });
  // Jobs run meanwhile.
  const jobs = Array.from({ length: 20 }, (_, i) => p.call('add', i, 1));
  assert.equal(await p.broadcast({ reload: 'v2', list: [1, 'ü'] }), 5);
  const m = marks(mark);
  assert.equal(m.length, 5, 'each worker handled it once');
  assert.deepEqual(m.map((x) => x[0]).sort(), ['A', 'A', 'B', 'B', 'B']);
  assert.equal(new Set(m.map((x) => x[1])).size, 5, 'five distinct workers');
  for (const x of m) assert.deepEqual(x[2], { reload: 'v2', list: [1, 'ü'] });
  assert.deepEqual(await Promise.all(jobs), Array.from({ length: 20 }, (_, i) => i + 1));
  // A handler that throws: the count still holds, the errors name their hosts.
  const err = await p.broadcast({ fail: 'bad ✗' }).then(() => assert.fail('resolved'), (e) => e);
  assert.equal(err.code, codes.BROADCAST_FAILED);
  assert.equal(err.reached, 5);
  assert.equal(err.failures.length, 5);
  for (const f of err.failures) {
    assert.equal(f.error.message, 'bad ✗');
    assert.equal(f.error.code, 'E_HANDLER');
    assert.ok(typeof f.pid === 'number' && typeof f.host === 'string', JSON.stringify(f));
  }
  assert.equal(new Set(err.failures.map((f) => f.host)).size, 2);
  await p.close();
  await rejectsClosed(p);
});

async function rejectsClosed(p) {
  const e = await p.broadcast('late').then(() => assert.fail('resolved'), (x) => x);
  assert.equal(e.code, codes.POOL_CLOSED);
}

test('no live host: 0 at once; messages that cannot go are refused', T, async (t) => {
  const redis = await startRedis(t);
  const p = producer(t, { redis: redis.url, queue: 'none', maxMessage: 1024 });
  assert.equal(await p.broadcast('anyone?'), 0);
  for (const m of [() => 1, 10n, Buffer.from('x')]) {
    const e = await p.broadcast(m).then(() => assert.fail('resolved'), (x) => x);
    assert.equal(e.code, codes.UNSERIALIZABLE);
  }
  const big = await p.broadcast('x'.repeat(2000)).then(() => assert.fail('resolved'), (x) => x);
  assert.equal(big.code, codes.MESSAGE_TOO_LARGE);
});

test('a host SIGKILLed while the broadcast waits for it: resolves with the other host\'s workers once its lease ran out', T, async (t) => {
  const redis = await startRedis(t);
  const mark = tempFile(t, 'marks');
  const gate = tempFile(t, 'gate');
  const lease = ['--lease', '1500'];
  const a = startHost(t, { url: redis.url, queue: 'kq', module: MODULE, args: ['--workers', '2', ...lease], env: { HOST_TAG: 'A', BCAST_MARK: mark } });
  const b = startHost(t, { url: redis.url, queue: 'kq', module: MODULE, args: ['--workers', '1', ...lease], env: { HOST_TAG: 'B', BCAST_MARK: mark } });
  await Promise.all([a.ready(), b.ready()]);
  const p = producer(t, { redis: redis.url, queue: 'kq', lease: 1500 });
  const pending = p.broadcast({ hold: gate });
  // Every handler holds it: neither host has answered.
  await until(() => marks(mark).length === 3, 'three handlers holding');
  process.kill(b.child.pid, 'SIGKILL');
  await b.exited;
  fs.writeFileSync(gate, '');
  assert.equal(await pending, 2, 'host B is not counted');
  // The pool goes on: host A alone now.
  assert.equal(await p.broadcast('after'), 2);
});

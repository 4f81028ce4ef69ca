// Delivery across real worker-host processes (`comrade worker`) and a real redis-server: many
// jobs over two hosts, a host killed or stopped while it holds jobs, a graceful shutdown, and
// Redis restarted mid-run. The assertions are about outcomes and counts, never durations:
// hosts that hold jobs do so because their jobs wait (SLOW_MS, GATE), and the test waits for each
// step it depends on (a job started: the MARK file; a host's line on stderr).
import test from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import {
  Pool, codes, startRedis, startHost, tempFile, lines, until, counted,
} from './redis-helpers.mjs';

const T = { timeout: 110000 };
// Short leases, so that a silent host's jobs move within the test; renewal every lease / 4.
const FAST = ['--lease', '1000', '--poll', '200'];

function producer(t, options) {
  const p = new Pool(options);
  t.after(() => p.terminate());
  return p;
}

// Runs `n` jobs with enqueue() (a callback per job, so that a second settlement would show),
// resolving with the outcomes once all `n` callbacks ran: [err, value, calls] per job.
function enqueueAll(p, n, name, opts = {}) {
  const out = new Array(n);
  let left = n;
  return {
    out,
    done: new Promise((resolve) => {
      for (let i = 0; i < n; i++) {
        p.exec(name, [i], opts).then(
          (v) => record(i, null, v), (e) => record(i, e, undefined));
      }
      function record(i, err, value) {
        if (out[i] !== undefined) {
          out[i].calls++;
          return;
        }
        out[i] = { err, value, calls: 1 };
        if (--left === 0) resolve(out);
      }
    }),
  };
}

test('10,000 jobs over two worker hosts: every result right, both hosts take part', T, async (t) => {
  const r = await startRedis(t);
  // The default lease (30 s): no job moves between these live hosts, however loaded the machine.
  const a = startHost(t, { url: r.url, queue: 'big', args: ['--workers', '2', '--concurrency', '8'] });
  const b = startHost(t, { url: r.url, queue: 'big', args: ['--workers', '2', '--concurrency', '8'] });
  await Promise.all([a.ready(), b.ready()]);
  const p = producer(t, { redis: r.url, queue: 'big' });
  const n = 10000;
  const results = await Promise.all(Array.from({ length: n }, (_, i) => p.call('double', i)));
  for (let i = 0; i < n; i++) assert.equal(results[i], 2 * i);
  const s = p.stats();
  assert.deepEqual([s.pending, s.completed, s.errored, s.failed, s.rejected], [0, n, 0, 0, 0]);
  // Both hosts ran jobs: each says how many on SIGTERM.
  a.child.kill('SIGTERM');
  b.child.kill('SIGTERM');
  const [ea, eb] = await Promise.all([a.exited, b.exited]);
  assert.equal(ea.code, 0, a.out);
  assert.equal(eb.code, 0, b.out);
  const ran = (h) => Number(/completed (\d+) job/.exec(h.out)[1]);
  assert.ok(ran(a) > 0 && ran(b) > 0, `${a.out}\n${b.out}`);
  assert.equal(ran(a) + ran(b), n);
  assert.deepEqual(counted(await p.queueStats()), { waiting: 0, running: 0, dead: 0 });
});

test('SIGKILL a host holding jobs: with retries, every job settles once and right on the other', T, async (t) => {
  const r = await startRedis(t);
  const mark = tempFile(t, 'a.marks');
  // Host A holds the jobs it takes (they would run for minutes), 2 at a time.
  const a = startHost(t, {
    url: r.url, queue: 'q', args: ['--workers', '1', '--concurrency', '2', ...FAST],
    env: { HOST_TAG: 'A', MARK: mark, SLOW_MS: '600000' },
  });
  await a.ready();
  // Retries to spare: a renewal late on a loaded machine may move a job once more.
  const p = producer(t, { redis: r.url, queue: 'q', retries: 3 });
  const run = enqueueAll(p, 200, 'work');
  await until(() => lines(mark).length === 2, 'host A holding 2 jobs');
  const held = lines(mark).map(Number);
  const b = startHost(t, {
    url: r.url, queue: 'q', args: ['--workers', '2', '--concurrency', '4', ...FAST], env: { HOST_TAG: 'B' },
  });
  await b.ready();
  a.child.kill('SIGKILL');
  const out = await run.done;
  for (let i = 0; i < 200; i++) {
    assert.equal(out[i].err, null, `job ${i}: ${out[i].err && out[i].err.message}`);
    assert.deepEqual(out[i].value, { v: 2 * i, host: 'B' });
    assert.equal(out[i].calls, 1);
  }
  // A's two jobs were among them: they ran again on B once A's lease ran out.
  assert.equal(held.length, 2);
  assert.equal(p.stats().completed, 200);
});

test('past its retries, a job of a dead host fails with ERR_WORKER_EXITED naming the host', T, async (t) => {
  const r = await startRedis(t);
  const mark = tempFile(t, 'a.marks');
  const a = startHost(t, {
    url: r.url, queue: 'q', args: ['--workers', '1', '--concurrency', '1', '--name', 'host-A', ...FAST],
    env: { HOST_TAG: 'A', MARK: mark, SLOW_MS: '600000' },
  });
  await a.ready();
  const p = producer(t, { redis: r.url, queue: 'q' }); // retries: 0
  const job = p.call('work', 7).then(() => null, (e) => e);
  await until(() => lines(mark).length === 1, 'host A holding the job');
  a.child.kill('SIGKILL');
  const b = startHost(t, { url: r.url, queue: 'q', args: FAST, env: { HOST_TAG: 'B' } });
  await b.ready();
  const err = await job;
  assert.equal(err.code, codes.WORKER_EXITED);
  assert.equal(err.host, 'host-A');
  assert.match(err.message, /worker host host-A died or stopped answering while running this job: it was delivered 2 times, more than its retries \(0\) allow/);
});

test('SIGSTOP a host past its lease, then SIGCONT: its late results are dropped, nothing settles twice', T, async (t) => {
  const r = await startRedis(t);
  const mark = tempFile(t, 'a.marks');
  const gate = tempFile(t, 'a.gate');
  // A's jobs wait for the gate; A is stopped while it holds them, so it cannot renew: B takes
  // them once the lease (1 s) runs out. The gate opens after B's results came back, so that
  // A's results come late.
  const a = startHost(t, {
    url: r.url, queue: 'q', args: ['--workers', '1', '--concurrency', '2', ...FAST],
    env: { HOST_TAG: 'A', MARK: mark, GATE: gate },
  });
  await a.ready();
  const p = producer(t, { redis: r.url, queue: 'q', retries: 2 });
  const run = enqueueAll(p, 2, 'work');
  await until(() => lines(mark).length === 2, 'host A holding both jobs');
  process.kill(a.child.pid, 'SIGSTOP');
  const b = startHost(t, { url: r.url, queue: 'q', args: FAST, env: { HOST_TAG: 'B' } });
  await b.ready();
  const out = await run.done;
  for (let i = 0; i < 2; i++) {
    assert.equal(out[i].err, null);
    assert.deepEqual(out[i].value, { v: 2 * i, host: 'B' });
  }
  fs.writeFileSync(gate, '');
  process.kill(a.child.pid, 'SIGCONT');
  // A finds out (its renewal or its completion) and drops both results.
  await a.waitFor(/dropped[\s\S]*dropped/, 'two dropped results');
  assert.equal(out[0].calls, 1);
  assert.equal(out[1].calls, 1);
  assert.equal(p.stats().completed, 2);
  // A goes on taking jobs.
  assert.equal((await p.call('work', 1)).v, 2);
});

test('SIGTERM: a host stops taking jobs, finishes those it holds, and exits 0', T, async (t) => {
  const r = await startRedis(t);
  const mark = tempFile(t, 'a.marks');
  const gate = tempFile(t, 'a.gate');
  const a = startHost(t, {
    url: r.url, queue: 'q', args: ['--workers', '1', '--concurrency', '2', ...FAST],
    env: { HOST_TAG: 'A', MARK: mark, GATE: gate },
  });
  await a.ready();
  const p = producer(t, { redis: r.url, queue: 'q' });
  const run = enqueueAll(p, 4, 'work');
  await until(() => lines(mark).length === 2, 'host A holding 2 jobs');
  a.child.kill('SIGTERM');
  await a.waitFor(/SIGTERM/, 'its SIGTERM line');
  // Its two jobs may finish now.
  fs.writeFileSync(gate, '');
  const { code } = await a.exited;
  assert.equal(code, 0, a.out);
  assert.match(a.out, /SIGTERM: finishing 2 job\(s\), taking no more/);
  // It took nothing after SIGTERM: the other two wait for another host.
  assert.equal(lines(mark).length, 2);
  assert.equal((await p.queueStats()).waiting, 2);
  const b = startHost(t, { url: r.url, queue: 'q', args: FAST, env: { HOST_TAG: 'B' } });
  await b.ready();
  const out = await run.done;
  const held = new Set(lines(mark).map(Number));
  for (let i = 0; i < 4; i++) {
    assert.equal(out[i].err, null);
    assert.deepEqual(out[i].value, { v: 2 * i, host: held.has(i) ? 'A' : 'B' });
  }
});

test('Redis restarted mid-run (its state lost): every job settles, with its result or ERR_REDIS, and new jobs run', T, async (t) => {
  const r = await startRedis(t);
  const mark = tempFile(t, 'a.marks');
  const gate = tempFile(t, 'a.gate');
  const a = startHost(t, {
    url: r.url, queue: 'q', args: ['--workers', '1', '--concurrency', '2', ...FAST],
    env: { HOST_TAG: 'A', MARK: mark, GATE: gate },
  });
  await a.ready();
  // A short producer lease: its heartbeat (every lease / 3) finds the lost state soon.
  const p = producer(t, { redis: r.url, queue: 'q', lease: 1500 });
  const run = enqueueAll(p, 6, 'work');
  await until(() => lines(mark).length === 2, 'host A running 2 jobs');
  await r.restart();
  // Every job was lost with Redis's state: the 4 waiting and the 2 running (whose results,
  // once the gate opens, find no entry and are dropped).
  const out = await run.done;
  for (let i = 0; i < 6; i++) {
    assert.equal(out[i].calls, 1);
    assert.equal(out[i].err && out[i].err.code, codes.REDIS, out[i].err && out[i].err.message);
    assert.match(out[i].err.message, /lost this job/);
    assert.ok(!out[i].err.message.includes('@'), out[i].err.message);
  }
  fs.writeFileSync(gate, '');
  await a.waitFor(/dropped[\s\S]*dropped/, 'two dropped results');
  // Recovery: the producer and the host reconnect; a new job runs (one sent before the
  // producer found out may still fail with ERR_REDIS).
  let v = null;
  for (let i = 0; i < 50 && v === null; i++) {
    v = await p.call('add', 20, 22).catch((e) => {
      assert.equal(e.code, codes.REDIS, e.message);
      return null;
    });
  }
  assert.equal(v, 42);
});

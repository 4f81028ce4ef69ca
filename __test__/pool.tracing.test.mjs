// Tracing through node:diagnostics_channel: the `comrade:job` TracingChannel's events, their
// order and fields, nothing without a subscriber, and the W3C traceparent a subscriber sets
// arriving in a Node worker (traceContext()) and in the Rust worker (Ctx::traceparent).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import diagnosticsChannel from 'node:diagnostics_channel';
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import {
  codes, fixture, openPool, errorOf, rejectsWith, repoRoot, TEST,
} from './pool-helpers.mjs';

const channel = diagnosticsChannel.tracingChannel('comrade:job');
const EVENTS = ['start', 'end', 'asyncStart', 'asyncEnd', 'error'];
const TP = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';

// Subscribes for the test's duration; each event as [name, context, copy of its fields then].
function record(t, onStart) {
  const log = [];
  const handlers = {};
  for (const name of EVENTS) {
    handlers[name] = (ctx) => {
      if (name === 'start' && onStart) onStart(ctx);
      log.push([name, ctx, { ...ctx }]);
    };
  }
  channel.subscribe(handlers);
  t.after(() => channel.unsubscribe(handlers));
  return { log, handlers };
}

const eventsOf = (log, jobId) => log.filter((e) => e[1].jobId === jobId).map((e) => e[0]);

test('comrade:job: start, end, then error, asyncStart, asyncEnd at settlement, with the job\'s pool, function, id, worker and times', TEST, async (t) => {
  const { log } = record(t);
  const { pool } = openPool(t, { module: fixture('observe.js'), name: 'traced', maxWorkers: 1, cancelGraceMs: 0 });
  const seenBeforeAwait = [];
  const result = await pool.call('ok', 5).then((v) => {
    seenBeforeAwait.push(log.map((e) => e[0]));
    return v;
  });
  assert.equal(result, 5);
  const [okStart, okEnd] = log;
  const okId = okEnd[2].jobId;
  assert.equal(typeof okId, 'number');
  assert.deepEqual(eventsOf(log, okId), ['start', 'end', 'asyncStart', 'asyncEnd']);
  // The caller's continuation runs after the job's asyncStart and asyncEnd.
  assert.deepEqual(seenBeforeAwait[0], ['start', 'end', 'asyncStart', 'asyncEnd']);
  // At start: who and what, nothing about the run yet; the job's id once it is submitted (end).
  assert.deepEqual(okStart[2], {
    pool: 'traced', function: 'ok', jobId: null, pid: null, waitMs: null, runMs: null, traceparent: null,
  });
  assert.equal(okStart[1], okEnd[1], 'one context object per job');
  const ctx = okStart[1];
  assert.equal(ctx.pid, pool.pids[0]);
  assert.ok(ctx.waitMs >= 0 && ctx.runMs >= 0, `${ctx.waitMs} ${ctx.runMs}`);
  assert.equal(ctx.result, 5);
  assert.ok(!('error' in ctx));

  // A thrown error: error before asyncStart.
  const err = await errorOf(pool.call('fail', 'nope'));
  const failId = log.at(-1)[1].jobId;
  assert.deepEqual(eventsOf(log, failId), ['start', 'end', 'error', 'asyncStart', 'asyncEnd']);
  const failCtx = log.at(-1)[1];
  assert.equal(failCtx.error, err);
  assert.equal(failCtx.function, 'fail');
  assert.ok(failCtx.runMs >= 0);
  assert.ok(failId > okId);

  // The default function; a timeout (the worker never answers: no run time).
  await pool.run(7);
  assert.equal(log.at(-1)[1].function, null);
  assert.equal(log.at(-1)[1].result, 7);
  await rejectsWith(pool.exec('hang', [], { timeout: 50 }), codes.JOB_TIMEOUT);
  const hung = log.at(-1)[1];
  assert.equal(hung.error.code, codes.JOB_TIMEOUT);
  assert.equal(typeof hung.pid, 'number');
  assert.equal(hung.runMs, null);
});

test('without a subscriber nothing is published; a subscriber sees jobs from its next batch on', TEST, async (t) => {
  const { pool } = openPool(t, { module: fixture('observe.js'), maxWorkers: 1 });
  await pool.call('ok', 1);
  const { log, handlers } = record(t);
  await Promise.all([pool.call('ok', 2), pool.run(3)]);
  assert.deepEqual(log.map((e) => [e[0], e[1].pool, e[1].function]), [
    ['start', 'default', 'ok'], ['end', 'default', 'ok'], ['start', 'default', null], ['end', 'default', null],
    ['asyncStart', 'default', 'ok'], ['asyncEnd', 'default', 'ok'],
    ['asyncStart', 'default', null], ['asyncEnd', 'default', null],
  ]);
  channel.unsubscribe(handlers);
  const before = log.length;
  await Promise.all([pool.call('ok', 4), pool.run(5)]);
  assert.equal(log.length, before);
});

test('a traceparent set by a start subscriber reaches the Node worker (traceContext()); none, or an invalid one, does not', TEST, async (t) => {
  const { pool } = openPool(t, { module: fixture('observe.js'), maxWorkers: 1, concurrency: 4 });
  assert.equal(await pool.call('traceContext'), null, 'nobody traces');
  // Every other job gets one, in a batch mixing both (the first job without); some get a
  // malformed value, which is not sent.
  let n = 0;
  record(t, (ctx) => {
    const i = n++;
    if (i % 2 === 1) ctx.traceparent = TP;
    else if (i % 4 === 2) ctx.traceparent = `${TP}\n{"t":"stop"}`;
  });
  const jobs = [];
  for (let i = 0; i < 8; i++) jobs.push(pool.call('traceContext'));
  const results = await Promise.all(jobs);
  results.forEach((r, i) => {
    assert.deepEqual(r, i % 2 === 1 ? { traceparent: TP } : null, `job ${i}`);
  });
  // The worker survived the malformed one (it was never sent).
  assert.equal(await pool.call('ok', 'alive'), 'alive');
});

test('a call with binary arguments carries its traceparent too (Node worker, json and advanced)', TEST, async (t) => {
  let n = 0;
  record(t, (ctx) => {
    if (n++ % 2 === 0) ctx.traceparent = TP;
  });
  for (const serialization of ['json', 'advanced']) {
    const { pool } = openPool(t, { module: fixture('observe.js'), maxWorkers: 1, concurrency: 4, serialization });
    n = 0;
    // One batch: binary and plain calls, every other one traced.
    const jobs = [
      pool.call('traceContext', Buffer.from([1, 2, 3])),
      pool.call('traceContext', { deep: [new Uint8Array(0)] }),
      pool.call('traceContext', 'plain'),
      pool.call('traceContext', Buffer.alloc(70000)),
    ];
    assert.deepEqual(await Promise.all(jobs), [{ traceparent: TP }, null, { traceparent: TP }, null], serialization);
    assert.ok((await pool.call('ok', Buffer.from('x'))).equals(Buffer.from('x')));
  }
});

test('a start subscriber that submits a job of its own leaves every job its own answer', TEST, async (t) => {
  const { pool } = openPool(t, { module: fixture('observe.js'), maxWorkers: 1, concurrency: 4 });
  let inner = null;
  let nested = false;
  const { log } = record(t, () => {
    if (nested) return;
    nested = true;
    inner = pool.call('ok', 'inner');
  });
  const outer = [pool.call('ok', 'outer 1'), pool.call('ok', 'outer 2'), pool.run('outer 3')];
  assert.deepEqual(await Promise.all([...outer, inner]), ['outer 1', 'outer 2', 'outer 3', 'inner']);
  const ids = log.filter((e) => e[0] === 'asyncEnd').map((e) => [e[1].result, e[1].jobId]);
  assert.equal(ids.length, 4);
  assert.equal(new Set(ids.map((x) => x[1])).size, 4, 'four distinct ids');
});

const md5Worker = path.join(repoRoot, 'target', 'debug', 'examples', 'md5_worker');
function newerSources(builtMs) {
  const crate = path.join(repoRoot, 'crates', 'worker');
  const files = [path.join(crate, 'Cargo.toml'), path.join(crate, 'examples', 'md5_worker.rs')];
  for (const f of readdirSync(path.join(crate, 'src'))) files.push(path.join(crate, 'src', f));
  files.push(...readdirSync(path.join(repoRoot, 'crates', 'protocol', 'src')).map((f) => path.join(repoRoot, 'crates', 'protocol', 'src', f)));
  return files.some((f) => statSync(f).mtimeMs > builtMs);
}

test('the traceparent reaches the Rust worker (Ctx::traceparent)', { timeout: 15 * 60 * 1000 }, async (t) => {
  if (!existsSync(md5Worker) || newerSources(statSync(md5Worker).mtimeMs)) {
    execFileSync('cargo', ['build', '-p', 'comrade-worker', '--examples'], {
      cwd: repoRoot, stdio: ['ignore', 'ignore', 'inherit'],
    });
  }
  const { pool } = openPool(t, { command: [md5Worker], maxWorkers: 1, name: 'rust' });
  assert.equal(await pool.call('traceparent'), null);
  const { log } = record(t, (ctx) => { ctx.traceparent = TP; });
  assert.equal(await pool.call('traceparent'), TP);
  assert.equal(await pool.call('add', 2, 3), 5, 'a function that ignores it');
  // With binary arguments (attachments), as without.
  assert.equal(await pool.call('traceparent', Buffer.from([1, 2]), { b: new Uint8Array(0) }), TP);
  const ctx = log.at(-1)[1];
  assert.equal(ctx.pool, 'rust');
  assert.equal(ctx.pid, pool.pids[0]);
});

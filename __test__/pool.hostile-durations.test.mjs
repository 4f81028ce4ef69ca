// Issue 15, point 1: huge finite durations (1e22 ms) passed the JS checks and aborted the
// process with a Rust panic ("cannot convert float seconds to Duration", "overflow when adding
// duration to instant"). The rule: a finite span is at most 2^32 - 1 ms (about 49.7 days),
// refused above that with a clear error and code; Infinity keeps its meaning. The binding
// refuses the same (it never trusts JS), and no panic crosses the N-API boundary.
//
// Each scenario runs in its own host process, so that a regression shows as that host's
// abort (exit 134) rather than taking the test runner down.
import assert from 'node:assert/strict';
import test from 'node:test';
import { fixture, repoRoot, runScript, TEST } from './pool-helpers.mjs';

const MAX = 2 ** 32 - 1;

/** Runs `body` (JS) in a fresh host with `Pool`, `codes`, `basic` and `native` in scope. */
function host(body) {
  const code = `
    const { Pool, codes } = require(${JSON.stringify(repoRoot)});
    const native = require(${JSON.stringify(`${repoRoot}/binding.js`)});
    const basic = ${JSON.stringify(fixture('basic.js'))};
    const say = (...a) => console.log(JSON.stringify(a));
    (async () => { ${body} })().catch((e) => { say('uncaught', e.code, e.message); process.exitCode = 3; });
  `;
  return runScript(null, { nodeArgs: ['-e', code], timeout: 20000 });
}

function outcome(r) {
  assert.equal(r.signal, null, `host killed by ${r.signal}: ${r.stderr}`);
  assert.equal(r.code, 0, `host exit ${r.code}: ${r.stderr}`);
  return r.lines.map((l) => JSON.parse(l));
}

test('options: a finite span over 2^32 - 1 ms is refused with ERR_INVALID_OPTION, never a crash', TEST, async () => {
  const r = await host(`
    for (const name of ['spawnDelay', 'idleTimeout', 'timeout', 'maxExpectedWait']) {
      for (const v of [1e22, Number.MAX_VALUE, ${MAX} + 1]) {
        try {
          new Pool({ module: basic, [name]: v }).terminate();
          say(name, v, 'accepted');
        } catch (e) {
          say(name, v, e.name, e.code, e.message);
        }
      }
    }
  `);
  const lines = outcome(r);
  assert.equal(lines.length, 12);
  for (const [name, v, cls, code, message] of lines) {
    assert.equal(cls, 'PoolError', `${name} ${v}`);
    assert.equal(code, 'ERR_INVALID_OPTION');
    assert.equal(message,
      `comrade Pool: ${name} must be at most ${MAX} ms (about 49.7 days), or Infinity; got ${v}`);
  }
});

test('options: spans at the bound and Infinity run jobs (the engine holds them without overflow)', TEST, async () => {
  const r = await host(`
    for (const v of [${MAX}, Infinity]) {
      const pool = new Pool({ module: basic, maxWorkers: 2, spawnDelay: v, idleTimeout: v, timeout: v });
      const out = await Promise.all([pool.run(1), pool.run(2), pool.run(3, { timeout: v })]);
      say(v, out[0].echoed, out[1].echoed, out[2].echoed);
      await pool.terminate();
    }
  `);
  assert.deepEqual(outcome(r), [[MAX, 1, 2, 3], [null, 1, 2, 3]]);
});

test("run(): a job's timeout over 2^32 - 1 ms rejects with ERR_INVALID_ARGUMENT; the pool goes on", TEST, async () => {
  const r = await host(`
    const pool = new Pool({ module: basic, maxWorkers: 1 });
    for (const timeout of [1e22, ${MAX} + 1]) {
      try {
        await pool.run(1, { timeout });
        say(timeout, 'resolved');
      } catch (e) {
        say(timeout, e.code, e.message);
      }
    }
    say('at the bound', (await pool.run('x', { timeout: ${MAX} })).echoed);
    await pool.terminate();
  `);
  assert.deepEqual(outcome(r), [
    [1e22, 'ERR_INVALID_ARGUMENT',
      `comrade Pool: run(): options.timeout must be at most ${MAX} ms (about 49.7 days), or Infinity; got 1e+22`],
    [MAX + 1, 'ERR_INVALID_ARGUMENT',
      `comrade Pool: run(): options.timeout must be at most ${MAX} ms (about 49.7 days), or Infinity; got ${MAX + 1}`],
    ['at the bound', 'x'],
  ]);
});

test('the binding refuses the same spans itself: an error with a code, never a panic across N-API', TEST, async () => {
  const r = await host(`
    const base = {
      program: process.execPath, args: ['-e', ''], maxWorkers: 1, concurrency: 1, protocol: 'lines',
    };
    for (const key of ['spawnDelayMs', 'idleTimeoutMs', 'timeoutMs']) {
      try {
        new native.NativePool({ ...base, [key]: 1e22 }, () => {});
        say(key, 'accepted');
      } catch (e) {
        say(key, e.code, e.message);
      }
    }
    // A per-job timeout in the typed array of a batch.
    const p = new native.NativePool(base, () => {});
    try {
      p.submitCalls(0, '1', null, 1, new Uint32Array(1), new Float64Array([1e22]));
      say('submitCalls', 'accepted');
    } catch (e) {
      say('submitCalls', e.code, e.message);
    }
    p.shutdown(false);
  `);
  const m = `must be at most ${MAX} ms (about 49.7 days), or Infinity`;
  assert.deepEqual(outcome(r), [
    ['spawnDelayMs', 'InvalidArg', `spawnDelayMs ${m}`],
    ['idleTimeoutMs', 'InvalidArg', `idleTimeoutMs ${m}`],
    ['timeoutMs', 'InvalidArg', `timeoutMs ${m}`],
    ['submitCalls', 'InvalidArg', `timeouts[0] ${m}`],
  ]);
});

// Issue 15, point 7: with jobs queued, the I/O thread read a chatty worker into an unbounded
// buffer (5M events took the parent's RSS from 42 to 1,768 MB). Now the engine stops reading
// workers while the records waiting for the host pass a byte bound, and reads again as the host
// takes them: a flooding worker blocks on its full socket instead.
//
// The bound is lowered for these tests through the internal `Symbol.for('comrade.limits')`
// option (`maxWaitingBytes`; the default is 32 MiB).
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import test from 'node:test';
import { fixture, openPool, TEST } from './pool-helpers.mjs';

const require = createRequire(import.meta.url);
const { NativePool } = require('../binding.js');
const LIMITS = Symbol.for('comrade.limits');
const MiB = 1 << 20;
const EVENT = '{"t":"event","name":"e","data":"0123456789012345678901234567890123456789"}';

test("a worker flooding events while the host's event loop is blocked: the engine's buffer and the RSS stay bounded", TEST, async (t) => {
  const bound = MiB;
  const pool = new NativePool({
    program: '/bin/sh',
    args: ['-c', `exec yes '${EVENT}' >&3`],
    env: { COMRADE_CHANNEL_FD: '3' },
    maxWorkers: 1,
    minWorkers: 1,
    concurrency: 1,
    protocol: 'lines',
    killGraceMs: 100,
    maxWaitingBytes: bound,
  }, () => {}); // never drained on a wake: this test takes when it says so
  try {
    const waiting = typeof pool.waitingBytes === 'function' ? () => pool.waitingBytes() : () => 0;
    const rss0 = process.memoryUsage.rss();
    // The host's event loop is blocked: nothing takes the records. The flood reaches the bound,
    // then the host stays blocked for 3000 more polls (the assertions are on the largest values
    // seen, whenever the loop ends).
    let maxWaiting = 0;
    let maxRss = 0;
    let polls = 0;
    const giveUp = Date.now() + 20000;
    while (polls < 3000 && Date.now() < giveUp) {
      const w = waiting();
      maxWaiting = Math.max(maxWaiting, w);
      maxRss = Math.max(maxRss, process.memoryUsage.rss());
      if (w >= bound || typeof pool.waitingBytes !== 'function') polls++;
      const t = Date.now() + 1;
      while (Date.now() < t);
    }
    t.diagnostic(`RSS +${((maxRss - rss0) / MiB).toFixed(1)} MiB, ${maxWaiting} bytes waited at most`);
    assert.ok(maxRss - rss0 < 64 * MiB, `the RSS grew by ${((maxRss - rss0) / MiB).toFixed(1)} MiB`);
    // One read at most past the bound: 16 reads of the 64 KiB decoder buffer, as records (their
    // framing adds about 10 bytes to each 84-byte line: twice that read is ample).
    assert.ok(maxWaiting >= bound, `the flood reached the bound (${maxWaiting})`);
    assert.ok(maxWaiting <= bound + 2 * MiB, `${maxWaiting} bytes waited`);
    // The host takes; reading resumes as it does (more comes than waited).
    let events = 0;
    let bytes = 0;
    while (bytes < 4 * (bound + 2 * MiB)) {
      const text = pool.take();
      if (text === null) {
        await new Promise((r) => setImmediate(r));
        continue;
      }
      bytes += text.length;
      const recs = JSON.parse(text);
      for (let i = 0; i < recs.length; i += 3) if (recs[i + 2].name === 'e') events++;
    }
    assert.ok(events > 10000, `${events} events`);
  } finally {
    pool.shutdown(false);
  }
});

// Progress keeps only each job's latest value while the worker's channel is busy (issue 14,
// point 5): values arrive in order and the last one before the result, not every one.
test('paused and resumed reads lose nothing: every event, and the progress values in order up to the last, arrive before the result', TEST, async (t) => {
  const { pool, log } = openPool(t, {
    module: fixture('flood.js'), maxWorkers: 1, concurrency: 1, [LIMITS]: { maxWaitingBytes: 64 * 1024 },
  });
  const n = 20000;
  const progress = [];
  const done = pool.run(n, { name: 'flood', onProgress: (v) => progress.push(v) });
  // Queued behind it: the I/O thread reads, as in the issue.
  const second = pool.call('bytes', 3);
  const until = Date.now() + 300;
  while (Date.now() < until); // the host is busy while the flood starts
  assert.equal(await done, n);
  assert.ok(progress.length >= 1 && progress.length <= n, `${progress.length} progress values`);
  assert.equal(progress.at(-1), n - 1, 'the last progress value arrives before the result');
  progress.forEach((v, i) => i > 0 && assert.ok(v > progress[i - 1], 'in order'));
  const events = log.filter((e) => e[0] === 'event');
  assert.equal(events.length, n);
  events.forEach((e, i) => assert.equal(e[2].i, i));
  assert.equal(await second, 'bbb');
});

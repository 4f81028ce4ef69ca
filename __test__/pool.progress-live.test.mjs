// Progress that is live and bounded (issue 14, point 5): progress() from synchronous code is
// written at once, and a flood of it keeps only the latest value per job while the channel is
// busy.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { TEST, fixture, openPool } from './pool-helpers.mjs';

test('progress from a synchronous CPU loop reaches the caller before the job ends', TEST, async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'comrade-progress-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'seen');
  const { pool } = openPool(t, { module: fixture('live-progress.js'), maxWorkers: 1 });
  const seen = [];
  // The job spins without yielding until `file` exists; only the progress callback creates it.
  const result = await pool.run([file, 20000], {
    name: 'spin',
    onProgress: (v) => {
      seen.push(v);
      if (v === 'started') fs.writeFileSync(file, '');
    },
  });
  assert.equal(result, 'done');
  assert.deepEqual(seen, ['started', 'seen']);
});

test('a million progress() calls in one job keep the worker small, and the last value arrives', { timeout: 120000 }, async (t) => {
  const { pool } = openPool(t, { module: fixture('live-progress.js'), maxWorkers: 1 });
  const before = await pool.call('rss');
  let count = 0;
  let last = -1;
  let increasing = true;
  const n = 1_000_000;
  const rss = await pool.run(n, {
    name: 'flood',
    onProgress: (v) => {
      count++;
      if (v <= last) increasing = false;
      last = v;
    },
  });
  assert.ok(increasing, 'progress values arrive in order');
  assert.equal(last, n - 1, 'the latest value arrives before the result');
  assert.ok(count >= 1 && count <= n, `${count} progress values`);
  const grown = rss - before;
  assert.ok(grown < 100 * 1024 * 1024, `the worker grew by ${Math.round(grown / 1048576)} MiB`);
});

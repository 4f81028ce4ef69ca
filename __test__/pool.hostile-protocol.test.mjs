// Issue 15, points 13 and 12 (the engine's parts): after a protocol error nothing more from
// that worker is believed (a reply in the same write as the violation was delivered), a
// protocol error is reported once per worker, a worker that exits 0 before `ready` is a startup
// failure with a clear message, and a missing `cwd` is named as such.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import test from 'node:test';
import {
  codes, entries, errorOf, fixture, openPool, rejectsWith, TEST, waitFor, Pool,
} from './pool-helpers.mjs';

const hostile = (mode) => ({
  command: ['python3', fixture('hostile-after-violation.py'), mode],
  maxWorkers: 1,
});

test('a reply in the same write as a protocol violation is not believed: the job fails with the exit', TEST, async (t) => {
  // Before the fix the rest of that write was read at the worker's exit, and the 100 KiB
  // reply resolved the job.
  for (let round = 0; round < 3; round++) {
    const { pool, log } = openPool(t, hostile('reply'));
    const err = await rejectsWith(pool.run(round), codes.WORKER_EXITED);
    assert.match(err.message, /after breaking the protocol \(.*garbage one/);
    assert.equal(err.signal, 'SIGKILL');
    await waitFor(() => entries(log, 'workerExit').length === 1, 'the exit');
    const pe = entries(log, 'protocolError');
    assert.equal(pe.length, 1);
    assert.match(pe[0][1].message, /garbage one/);
    await pool.terminate();
  }
});

test('protocolError fires once per worker, however much it sends after the violation', TEST, async (t) => {
  const { pool, log } = openPool(t, hostile('twice'));
  await rejectsWith(pool.run(1), codes.WORKER_EXITED);
  await waitFor(() => entries(log, 'workerExit').length === 1, 'the exit');
  await pool.terminate();
  const pe = entries(log, 'protocolError');
  assert.equal(pe.length, 1, JSON.stringify(pe));
  assert.match(pe[0][1].message, /garbage one/);
  assert.equal(entries(log, 'event').length, 0, 'the event after the violation is dropped');
});

test('a worker that exits with code 0 before ready fails its jobs as a startup failure', TEST, async (t) => {
  // It used to read "exited with code 0 while running this job" (ERR_WORKER_EXITED).
  const { pool } = openPool(t, { command: [process.execPath, '-e', '0'], maxWorkers: 1 });
  const jobs = [pool.run(1), pool.run(2)].map(errorOf);
  for (const err of await Promise.all(jobs)) {
    assert.equal(err.code, codes.WORKER_INIT_FAILED, err.message);
    assert.match(err.message, /^worker \d+ exited with code 0 before it was ready$/);
    assert.equal(err.exitCode, 0);
  }
});

test('cwd: a missing directory is refused by the constructor, and named if it goes away later', TEST, async (t) => {
  const missing = path.join(os.tmpdir(), `comrade-no-such-dir-${process.pid}`);
  assert.throws(() => new Pool({ module: fixture('basic.js'), cwd: missing }), {
    name: 'PoolError', code: codes.INVALID_OPTION, message: `comrade Pool: cwd not found: ${missing}`,
  });
  const file = fixture('basic.js');
  assert.throws(() => new Pool({ module: file, cwd: file }), {
    code: codes.INVALID_OPTION, message: `comrade Pool: cwd is not a directory: ${file}`,
  });
  // A cwd removed after the pool was made: the engine says which path is missing (it used to
  // say "cannot start worker /usr/bin/node: No such file or directory").
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'comrade-cwd-'));
  const { pool } = openPool(t, { module: file, cwd: dir, maxWorkers: 1 });
  fs.rmdirSync(dir);
  const err = await rejectsWith(pool.run(1), codes.SPAWN_FAILED);
  assert.equal(err.message, `cannot start worker ${JSON.stringify(process.execPath)}: its working ` +
    `directory (cwd) ${JSON.stringify(dir)} does not exist or is not a directory`);
});

// The pool and the host's life: a pending job keeps Node alive, an idle pool
// does not (no exit() needed), and no worker outlives its host, even one
// spinning in an endless loop, when the host is SIGKILLed.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import test from 'node:test';
import { TEST, isGone, killIfAlive, runNode, waitFor } from './cc-helpers.mjs';

const pidsIn = (lines) => lines.filter((l) => l.startsWith('pid ')).map((l) => Number(l.slice(4)));

test('a host that never calls exit() runs its jobs, then ends by itself', TEST, async (t) => {
  const out = await runNode('parent-lifetime.js', { timeout: 20000 });
  const pids = pidsIn(out.lines);
  t.after(() => pids.forEach(killIfAlive));
  // Both callbacks ran: the pending jobs kept Node alive, even with no timer
  // of the host's own pending during the second job.
  assert.deepEqual(out.lines.filter((l) => !l.startsWith('pid ')), ['first null first', 'second null second'],
    `stdout:\n${out.stdout}\nstderr:\n${out.stderr}`);
  assert.equal(out.timedOut, false, 'the idle pool kept the host alive');
  assert.equal(out.code, 0, out.stderr);
  assert.equal(pids.length, 1);
  // And its worker went with it.
  await waitFor(() => pids.every(isGone), 'the worker to go with its host', 5000);
});

test('no worker outlives a SIGKILLed host: busy-looping, interval-holding or idle', TEST, async (t) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'cc-orphans-'));
  let pids = {};
  t.after(() => {
    Object.values(pids).forEach(killIfAlive);
    rmSync(dir, { recursive: true, force: true });
  });

  let killedHost = false;
  let aliveBeforeKill = [];
  const out = await runNode('parent-orphans.js', {
    env: { CC_MARKER_DIR: dir },
    timeout: 15000,
    onLine: (line, child) => {
      if (!line.startsWith('{')) return;
      pids = JSON.parse(line);
      aliveBeforeKill = Object.values(pids).map((pid) => !isGone(pid));
      killedHost = child.kill('SIGKILL');
    },
  });
  assert.ok(killedHost, `the host never reported its workers; stdout:\n${out.stdout}\nstderr:\n${out.stderr}`);
  assert.equal(out.signal, 'SIGKILL');
  assert.deepEqual(Object.keys(pids).sort(), ['idle', 'interval', 'spin']);
  assert.equal(new Set(Object.values(pids)).size, 3);
  assert.deepEqual(aliveBeforeKill, [true, true, true], 'workers are alive before the kill');

  await waitFor(() => Object.values(pids).every(isGone), 'the workers to die', 5000).catch(() => {});
  const survivors = Object.entries(pids).filter(([, pid]) => !isGone(pid)).map(([mode]) => mode);
  assert.deepEqual(survivors, [], `orphaned workers: ${survivors.join(', ')}`);
});

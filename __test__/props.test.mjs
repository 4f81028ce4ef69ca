// Property tests (fast-check) of the public API: random values thrown at Pool#run, Pool#call,
// many calls in one tick, new Pool(...), new ComputeCluster(...) and ComputeCluster#enqueue.
// Every call settles or throws a coded error (a PoolError with a code in `codes`; a string for
// ComputeCluster), and never crashes or hangs the host. Each property runs in its own host
// process (fixtures/props/host.mjs), bounded in runs and in time, so a crash or a hang is an
// assertion here with fast-check's counterexample. `exec` and `map` do not exist yet.
import assert from 'node:assert/strict';
import path from 'node:path';
import test from 'node:test';
import { fileURLToPath } from 'node:url';
import { runScript } from './pool-helpers.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const host = path.join(here, 'fixtures', 'props', 'host.mjs');

for (const property of ['run', 'call', 'batch', 'pool', 'cc', 'enqueue']) {
  test(`property: ${property} settles or throws a coded error, never crashes or hangs`, { timeout: 120000 }, async () => {
    const r = await runScript(host, { args: [property], timeout: 100000 });
    const out = `${r.stdout}\n${r.stderr}`.slice(-4000);
    assert.equal(r.timedOut, false, `the property host hung:\n${out}`);
    assert.equal(r.signal, null, `the property host died of ${r.signal}:\n${out}`);
    assert.equal(r.code, 0, `the property failed or the host crashed:\n${out}`);
    assert.match(r.stdout, new RegExp(`^ok ${property} \\d+$`, 'm'));
  });
}

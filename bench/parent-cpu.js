'use strict';
// Benchmark: the parent process's CPU time per job (every thread of it: the JS thread and the
// engine's), which is what a change to the host or the engine costs, and less at the mercy of a
// busy machine than jobs/s. Pool with the Rust example worker (echo of a 16-byte string, 64
// callers in flight, concurrency 10, 2 workers) after a warm-up; each measurement in a fresh
// process, builds interleaved round by round (order shuffled), medians and minimums printed.
//
//   node bench/parent-cpu.js [--rounds N] [--jobs N] [--baseline DIR]... [--worker PATH]
//                            [--workload echo|md5]
//
// --workload md5: the peers harness's md5 job instead of the echo (a 3072-byte payload, the
// worker's `md5` function returns [payload, md5 hex], the digest checked on every reply).
// --baseline DIR: another built checkout (its index.js), measured in the same rounds, e.g. the
// commit before a change; the ratio is this build's parent CPU per job over that one's, paired
// round by round (median). --worker: the worker executable (default: this checkout's
// target/release/examples/md5_worker), the same for every build so that only the parent
// differs.

const path = require('node:path');
const { parseArgs } = require('node:util');
const { runBuilds, printPerJob } = require('./common');

const ROOT = path.join(__dirname, '..');

if (process.argv[2] === '--child') {
  child(process.argv[3], process.argv[4], Number(process.argv[5]), process.argv[6]);
} else {
  main();
}

function child(dir, worker, jobs, workload) {
  const { Pool } = require(path.join(dir, 'index.js'));
  const pool = new Pool({ command: [worker], minWorkers: 2, maxWorkers: 2, concurrency: 10 });
  const payload = 'abc'.repeat(1024);
  const digest = require('node:crypto').createHash('md5').update(payload).digest('hex');
  const one = workload === 'md5'
    ? async () => {
      const [, hex] = await pool.run(payload, { name: 'md5' });
      if (hex !== digest) throw new Error('wrong digest');
    }
    : async () => {
      if (await pool.run('0123456789abcdef') !== '0123456789abcdef') throw new Error('wrong echo');
    };
  const callers = workload === 'md5' ? 20 : 64; // as the peers harness
  const go = async (n) => {
    let left = n;
    await Promise.all(Array.from({ length: callers }, async () => {
      while (left-- > 0) await one();
    }));
  };
  (async () => {
    await go(Math.min(jobs, 5000));
    const cpu0 = process.cpuUsage();
    const t0 = process.hrtime.bigint();
    await go(jobs);
    const secs = Number(process.hrtime.bigint() - t0) / 1e9;
    const cpu = process.cpuUsage(cpu0);
    await pool.terminate();
    process.stdout.write(JSON.stringify({ us: (cpu.user + cpu.system) / jobs, jps: jobs / secs }));
  })();
}

function main() {
  const { values } = parseArgs({
    options: {
      rounds: { type: 'string', default: '9' },
      jobs: { type: 'string', default: '200000' },
      baseline: { type: 'string', multiple: true, default: [] },
      worker: { type: 'string', default: path.join(ROOT, 'target', 'release', 'examples', 'md5_worker') },
      workload: { type: 'string', default: 'echo' },
    },
  });
  const rounds = Number(values.rounds);
  const jobs = Number(values.jobs);
  const builds = [ROOT, ...values.baseline.map((d) => path.resolve(d))];
  const runs = runBuilds(builds, rounds,
    (b) => [__filename, '--child', b, values.worker, String(jobs), values.workload], 120000);
  console.log(`parent CPU per job, Pool + Rust worker, ${values.workload}, ${jobs} jobs per run, ${rounds} rounds`);
  printPerJob(runs, ROOT, 'build');
}

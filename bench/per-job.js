'use strict';
// Benchmark: what one job costs each process, in the peers harness's shape (2 workers; echo: a
// 16-byte string, 64 callers; md5: the 3072-byte payload returned with its md5, 20 callers),
// for a Pool with Node workers, a Pool with the Rust example worker, and bare pipelined
// child_process.fork (the harness's fork contender, its children the compute-cluster-style
// bench/workers/echo.js and md5.js). Per job: the workers' CPU (user + system, and system
// alone), their read and write system calls and voluntary context switches (wake-ups), from
// /proc/<pid>/{stat,io,status}; the parent's CPU (JS thread and I/O thread together) and its
// read/write calls. Each run a fresh process, kinds interleaved round by round, medians.
//
//   node bench/per-job.js [--rounds 3] [--jobs 60000] [--workload md5|echo] [--dir DIR]
//
// --dir: another built checkout whose Pool and Rust worker are measured too (e.g. main).
// /proc's CPU times count in 10 ms ticks: give it enough jobs. (read/write counts are those of
// the read and write families; Node's IPC uses recvmsg/sendmsg, which /proc/<pid>/io does not
// count, so fork's children show about 0 reads.)

const fs = require('node:fs');
const path = require('node:path');
const { fork, execFileSync } = require('node:child_process');
const { parseArgs } = require('node:util');
const { median } = require('./common');

const ROOT = path.join(__dirname, '..');
const PAYLOAD = { md5: 'abc'.repeat(1024), echo: '0123456789abcdef' };
const CALLERS = { md5: 20, echo: 64 };

if (process.argv[2] === '--child') child(process.argv[3], process.argv[4], Number(process.argv[5]), process.argv[6]);
else main();

function proc(pid) {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const io = fs.readFileSync(`/proc/${pid}/io`, 'utf8');
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  return {
    cpu: (Number(f[11]) + Number(f[12])) * 1e4, // utime + stime, µs
    sys: Number(f[12]) * 1e4,
    reads: Number(/syscr: (\d+)/.exec(io)[1]),
    writes: Number(/syscw: (\d+)/.exec(io)[1]),
    wakeups: Number(/\nvoluntary_ctxt_switches:\s+(\d+)/.exec(status)[1]),
  };
}

function child(kind, workload, jobs, dir) {
  const payload = PAYLOAD[workload];
  let run;
  let pids;
  let close;
  if (kind === 'fork') {
    const ws = [];
    for (let i = 0; i < 2; i++) {
      const c = fork(path.join(__dirname, 'workers', `${workload}.js`));
      const w = { c, q: [] };
      c.on('message', (m) => w.q.shift()(m));
      ws.push(w);
    }
    let next = 0;
    run = () => new Promise((resolve) => {
      const w = ws[next];
      next = (next + 1) % ws.length;
      w.q.push(resolve);
      w.c.send(payload);
    });
    pids = () => ws.map((w) => w.c.pid);
    close = () => ws.forEach((w) => w.c.kill());
  } else {
    const { Pool } = require(path.join(dir, 'index.js'));
    const rust = kind === 'rust';
    const pool = new Pool({
      ...(rust
        ? { command: [path.join(dir, 'target', 'release', 'examples', 'md5_worker')] }
        : { module: path.join(__dirname, 'workers', 'cpu-node.js') }),
      minWorkers: 2, maxWorkers: 2, concurrency: 10,
    });
    run = workload === 'md5' ? () => pool.call('md5', payload) : () => pool.run(payload);
    pids = () => pool.pids;
    close = () => pool.close();
  }
  const go = async (n) => {
    let left = n;
    await Promise.all(Array.from({ length: CALLERS[workload] }, async () => {
      while (left-- > 0) {
        const r = await run();
        if ((workload === 'md5' ? r[0] : r) !== payload) throw new Error('wrong reply');
      }
    }));
  };
  (async () => {
    await go(5000);
    const w0 = pids().map(proc);
    const p0 = proc(process.pid);
    const t0 = process.hrtime.bigint();
    await go(jobs);
    const secs = Number(process.hrtime.bigint() - t0) / 1e9;
    const p1 = proc(process.pid);
    const w1 = pids().map(proc);
    await close();
    const workers = (k) => w1.reduce((s, x, i) => s + x[k] - w0[i][k], 0) / jobs;
    process.stdout.write(JSON.stringify({
      jps: jobs / secs,
      workerUs: workers('cpu'), workerSysUs: workers('sys'), workerReads: workers('reads'),
      workerWrites: workers('writes'), workerWakeups: workers('wakeups'),
      parentUs: (p1.cpu - p0.cpu) / jobs, parentReads: (p1.reads - p0.reads) / jobs,
      parentWrites: (p1.writes - p0.writes) / jobs,
    }));
  })();
}

function main() {
  const { values } = parseArgs({
    options: {
      rounds: { type: 'string', default: '3' },
      jobs: { type: 'string', default: '60000' },
      workload: { type: 'string', default: 'md5' },
      dir: { type: 'string' },
    },
  });
  const workload = values.workload;
  if (!PAYLOAD[workload]) throw new Error(`--workload: echo or md5, not ${workload}`);
  const contenders = [['fork', 'bare fork (pipelined)', ROOT], ['node', 'Pool + Node worker', ROOT],
    ['rust', 'Pool + Rust worker', ROOT]];
  if (values.dir) {
    const dir = path.resolve(values.dir);
    contenders.push(['node', `Pool + Node worker (${dir})`, dir], ['rust', `Pool + Rust worker (${dir})`, dir]);
  }
  const runs = contenders.map(() => []);
  for (let r = 0; r < Number(values.rounds); r++) {
    const order = contenders.map((_, i) => i).sort(() => Math.random() - 0.5);
    for (const i of order) {
      const [kind, , dir] = contenders[i];
      const out = execFileSync(process.execPath, [__filename, '--child', kind, workload, values.jobs, dir],
        { encoding: 'utf8', timeout: 300000 });
      runs[i].push(JSON.parse(out));
    }
    process.stderr.write(`round ${r + 1}/${values.rounds}\n`);
  }
  console.log(`${workload}, 2 workers, ${values.jobs} jobs per run, ${values.rounds} rounds, medians, per job:`);
  console.log('| contender | jobs/s | worker µs | of it system | worker reads | worker writes | ' +
    'worker wake-ups | parent µs | parent reads | parent writes |');
  console.log('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
  contenders.forEach(([, label], i) => {
    const m = (k) => median(runs[i].map((x) => x[k]));
    console.log(`| ${label} | ${Math.round(m('jps'))} | ${m('workerUs').toFixed(2)} | ${m('workerSysUs').toFixed(2)} | ` +
      `${m('workerReads').toFixed(3)} | ${m('workerWrites').toFixed(3)} | ${m('workerWakeups').toFixed(3)} | ` +
      `${m('parentUs').toFixed(2)} | ${m('parentReads').toFixed(3)} | ${m('parentWrites').toFixed(3)} |`);
  });
}

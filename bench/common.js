'use strict';
// What the benchmarks share: medians, number formatting, the machine line of a report, and
// how busy the rest of the machine was during a run.

const { execFileSync, spawn } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const ROOT = path.join(__dirname, '..');

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

const fmtInt = (n) => (n === undefined ? 'n/a' : Math.round(n).toLocaleString('en-US'));
const fmtRatio = (a, b) => (a === undefined || b === undefined ? 'n/a' : `${(a / b).toFixed(2)}×`);

function machineInfo() {
  const cpus = os.cpus();
  let commit = null;
  try {
    commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: ROOT, stdio: ['ignore', 'pipe', 'ignore'] })
      .toString().trim();
  } catch {
    // not a git checkout, or no commit yet: leave it out
  }
  return {
    node: process.version,
    cpu: cpus.length ? cpus[0].model.trim() : 'unknown',
    cores: cpus.length,
    platform: `${os.platform()} ${os.release()} ${os.arch()}`,
    commit,
  };
}

// CPU ticks of the whole machine and of this process (piscina's threads
// included) plus its reaped children (every worker is reaped before the run
// ends), from /proc; null elsewhere.
function cpuSnapshot() {
  try {
    const all = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
    const [user, nice, system, idle, iowait, irq, softirq, steal] = all;
    const self = fs.readFileSync('/proc/self/stat', 'utf8');
    // Fields after the ")" that closes the command name start at field 3 (state).
    const f = self.slice(self.lastIndexOf(')') + 2).split(' ').map(Number);
    return {
      busy: user + nice + system + irq + softirq + (steal || 0),
      total: user + nice + system + idle + iowait + irq + softirq + (steal || 0),
      own: f[11] + f[12] + f[13] + f[14], // utime, stime, cutime, cstime
    };
  } catch {
    return null;
  }
}

function othersCpuShare(a, b) {
  if (!a || !b || b.total <= a.total) return null;
  return Math.max(0, (b.busy - a.busy) - (b.own - a.own)) / (b.total - a.total);
}

// Runs every workload for every contender, `rounds` times, rotating the contenders' order each
// round so drift on the machine hits everyone alike. `measureOne(contender, workload, mine)`
// returns the workload's metrics ({ name: value }) and pushes any failure text to `mine`.
// Each measurement runs in a fresh process of its own, as the peers harness does: this script
// again, with the same arguments and COMRADE_BENCH_ONE naming the contender and the workload
// (one process measuring everyone lets one contender's heap, JIT state and leftover threads
// weigh on the next).
async function runRounds({ rounds, contenders, workloads, metrics, nameWidth, measureOne }) {
  if (process.env[ONE] !== undefined) return measureHere(contenders, workloads, measureOne);
  const raw = [];
  const failures = [];
  const perRound = {};
  for (const c of contenders) perRound[c.name] = Object.fromEntries(metrics.map((m) => [m, []]));
  for (let round = 0; round < rounds; round++) {
    const k = round % contenders.length;
    const order = contenders.slice(k).concat(contenders.slice(0, k));
    for (const w of workloads) {
      for (const c of order) {
        const mine = [];
        const values = await measureApart(c, w, mine);
        for (const [metric, v] of Object.entries(values)) perRound[c.name][metric].push(v);
        raw.push({ round: round + 1, workload: w.id, contender: c.name, ...values, failures: mine.length });
        for (const f of mine) failures.push(`${c.name} ${w.id} round ${round + 1}: ${f}`);
        const shown = Object.entries(values)
          .map(([metric, v]) => `${metric} ${fmtInt(v)}${metric === 'p50' || metric === 'p99' ? ' µs' : ' jobs/s'}`)
          .join(', ');
        console.error(`round ${round + 1}/${rounds}  ${w.id.padEnd(7)}  ${c.name.padEnd(nameWidth)}  ${shown}` +
          (mine.length ? `  FAILURES: ${mine.length}` : ''));
      }
    }
  }
  const medians = {};
  for (const c of contenders) {
    medians[c.name] = {};
    for (const [metric, xs] of Object.entries(perRound[c.name])) medians[c.name][metric] = median(xs);
  }
  return { raw, failures, perRound, medians };
}

const ONE = 'COMRADE_BENCH_ONE';
const MARK = '@@MEASURED@@ ';

// In the measuring process: the one measurement COMRADE_BENCH_ONE names, printed on one line
// for the parent; then this process ends.
async function measureHere(contenders, workloads, measureOne) {
  const { contender, workload } = JSON.parse(process.env[ONE]);
  const c = contenders.find((x) => x.name === contender);
  const w = workloads.find((x) => x.id === workload);
  const mine = [];
  let values = {};
  try {
    if (!c || !w) throw new Error(`no contender ${contender} or workload ${workload} here`);
    values = await measureOne(c, w, mine);
  } catch (e) {
    mine.push(String((e && e.stack) || e));
  }
  fs.writeSync(1, `\n${MARK}${JSON.stringify({ values, mine })}\n`);
  process.exit(0);
}

// In the running process: one measurement in a fresh process (this script, same arguments).
function measureApart(c, w, mine) {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [...process.execArgv, process.argv[1], ...process.argv.slice(2)], {
      env: { ...process.env, [ONE]: JSON.stringify({ contender: c.name, workload: w.id }) },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (d) => { out += d; });
    child.on('close', (code, signal) => {
      const at = out.lastIndexOf(MARK);
      if (at === -1) {
        mine.push(`the measuring process ended (${signal || code}) without a result`);
        resolve({});
        return;
      }
      const { values, mine: failures } = JSON.parse(out.slice(at + MARK.length).split('\n')[0]);
      mine.push(...failures);
      resolve(values);
    });
  });
}

// Reports failures (exit code 1), and makes sure the process ends: every pool has been shut
// down, so if something still holds the loop open, say what and stop instead of hanging.
function finish(failures) {
  if (failures.length) {
    console.log(`\nFAILED: ${failures.length} wrong replies or errors`);
    for (const f of failures.slice(0, 20)) console.log(`  ${f}`);
    process.exitCode = 1;
  }
  setTimeout(() => {
    console.error(`process did not exit: still active: ${process.getActiveResourcesInfo().join(', ')}`);
    process.exit(1);
  }, 5000).unref();
}

// `--rounds N --jobs N` of the small option benchmarks (bench/priority.js, bench/select-worker.js).
function roundsAndJobs() {
  const { values } = require('node:util').parseArgs({
    options: { rounds: { type: 'string', default: '5' }, jobs: { type: 'string', default: '100000' } },
  });
  return { rounds: Number(values.rounds), jobs: Number(values.jobs) };
}

// `measure(contender)` for each contender, `rounds` times, the order rotated each round so
// drift on the machine hits everyone alike: { name: [one figure a round] }.
async function interleaved(rounds, contenders, measure) {
  const out = Object.fromEntries(contenders.map((c) => [c.name, []]));
  for (let r = 0; r < rounds; r++) {
    for (let k = 0; k < contenders.length; k++) {
      const c = contenders[(r + k) % contenders.length];
      out[c.name].push(await measure(c));
    }
  }
  return out;
}

// jobs/s of `callers` callers echoing 16-byte strings through `call(s, i)` until `jobs` replies,
// each checked (a wrong one throws). Warms the pool up first: 256 jobs, so every worker runs.
async function echoThroughput(pool, { jobs, callers, call }) {
  await Promise.all(Array.from({ length: 256 }, (_, i) => pool.run(`w${i}`)));
  let issued = 0;
  let bad = 0;
  const caller = async () => {
    while (issued < jobs) {
      const i = issued++;
      const s = `job-${String(i).padStart(12, '0')}`;
      if ((await call(s, i)) !== s) bad++;
    }
  };
  const t0 = process.hrtime.bigint();
  await Promise.all(Array.from({ length: callers }, caller));
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  if (bad) throw new Error(`${bad} wrong replies`);
  return jobs / secs;
}

// Runs `node <argv(build)>` for each build once a round, a fresh process each, the order
// shuffled each round: build -> the JSON each run printed ({ us, jps }).
function runBuilds(builds, rounds, argv, timeout) {
  const runs = new Map(builds.map((b) => [b, []]));
  for (let r = 0; r < rounds; r++) {
    const order = [...builds].sort(() => Math.random() - 0.5);
    for (const b of order) {
      const out = execFileSync(process.execPath, argv(b), { encoding: 'utf8', timeout });
      runs.get(b).push(JSON.parse(out));
    }
    process.stderr.write(`round ${r + 1}/${rounds}\n`);
  }
  return runs;
}

// The CPU-per-job table of runBuilds' runs: each build's µs/job (median, min) and jobs/s, and
// `mine`'s µs/job over that build's, paired round by round. `what` names the first column.
function printPerJob(runs, mine, what) {
  console.log(`| ${what} | µs/job median | µs/job min | jobs/s median | this checkout ÷ this one, paired median |`);
  console.log('|---|---:|---:|---:|---:|');
  const ours = runs.get(mine);
  for (const [b, rs] of runs) {
    const us = rs.map((x) => x.us);
    const ratio = b === mine ? 1 : median(rs.map((x, i) => ours[i].us / x.us));
    console.log(`| ${b === mine ? 'this checkout' : b} | ${median(us).toFixed(3)} | ${Math.min(...us).toFixed(3)} | ` +
      `${Math.round(median(rs.map((x) => x.jps)))} | ${ratio.toFixed(3)} |`);
  }
}

module.exports = {
  median, fmtInt, fmtRatio, machineInfo, cpuSnapshot, othersCpuShare, runRounds, finish,
  roundsAndJobs, interleaved, echoThroughput, runBuilds, printPerJob,
};

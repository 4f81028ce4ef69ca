'use strict';
// pool.metrics(): Prometheus text exposition (format 0.0.4) from the engine's own counters,
// with no dependency. The engine counts outcomes, exits and the wait/run histograms (fixed
// buckets, counted in Rust where stats() already takes its samples); the parent process adds
// what only it sees: aborts, jobs refused before they reached the engine, and outcomes per
// named function. An Observer keeps those, and the recent errors and worker exits the status
// page lists.

const { codes } = require('./errors');

const CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';
// Outcomes of comrade_jobs_total, in output order, each with its pool-wide total from a
// stats()-shaped snapshot (every settled job in exactly one; a caller that joined a shared job
// is `coalesced`, whatever the shared job's outcome).
const OUTCOME_TOTALS = [
  ['ok', (s) => s.completed],
  // The engine's failures other than its timeouts (a caller that left a shared job by its own
  // timeout is no failure of the engine's: callerTimeouts).
  ['error', (s) => s.errored + s.failed -
    (s.timedOut + s.queueTimedOut + s.totalTimedOut - s.callerTimeouts)],
  ['timeout', (s) => s.timedOut + s.queueTimedOut + s.totalTimedOut],
  ['aborted', (s) => s.aborted],
  ['rejected', (s) => s.rejected],
  // Callers that joined a shared job (`key`) instead of running one.
  ['coalesced', (s) => s.coalesced],
];
const OUTCOMES = OUTCOME_TOTALS.map((o) => o[0]);
// Indexes into the per-function counts.
const OK = 0;
const ERROR = 1;
const TIMEOUT = 2;
const ABORTED = 3;
const REJECTED = 4;
const COALESCED = OUTCOMES.indexOf('coalesced');
// Entries kept for the status page.
const RECENT = 50;
// Most distinct function names counted per pool, and the longest name counted: other jobs are
// counted without a `function` label (a program that makes names up must not grow the output,
// nor the memory, for ever). The status page's entries keep at most TEXT_LIMIT characters of a
// message or a name.
const MAX_FUNCTIONS = 256;
const MAX_FUNCTION_NAME = 128;
const TEXT_LIMIT = 500;

// Pool-wide totals per outcome, from a stats() snapshot.
function outcomeTotals(s) {
  return Object.fromEntries(OUTCOME_TOTALS.map(([name, total]) => [name, total(s)]));
}

// What the parent process sees of a pool's jobs and workers: counts per named function, and
// the last RECENT job errors and worker exits. Only named jobs and failures reach it, so the
// common case (an anonymous job that succeeds) costs one comparison.
class Observer {
  constructor() {
    this.fns = new Map(); // name -> Float64Array of counts, indexed like OUTCOMES
    // The function counted last and its counts: a pool mostly runs one function many times
    // in a row, and a string comparison is cheaper than a Map lookup per job.
    this.lastFn = null;
    this.lastCounts = null;
    this.errors = [];
    this.exits = [];
  }

  // A job of function `fn` (a string, or null for the default function) ended with `outcome`.
  outcome(fn, outcome) {
    if (fn === null || outcome < 0) return;
    if (fn === this.lastFn) {
      this.lastCounts[outcome]++;
      return;
    }
    let counts = this.fns.get(fn);
    if (counts === undefined) {
      if (this.fns.size >= MAX_FUNCTIONS || fn.length > MAX_FUNCTION_NAME) return;
      counts = new Float64Array(OUTCOMES.length);
      this.fns.set(fn, counts);
    }
    this.lastFn = fn;
    this.lastCounts = counts;
    counts[outcome]++;
  }

  // A job failed with `err` (its worker threw, it timed out, its worker died, ...).
  failed(fn, err) {
    const timeout = err !== null && typeof err === 'object' && err.code === codes.JOB_TIMEOUT;
    this.outcome(fn, timeout ? TIMEOUT : ERROR);
    const e = err !== null && typeof err === 'object' ? err : { message: String(err) };
    push(this.errors, {
      time: Date.now(),
      function: fn === null ? null : clip(fn),
      name: typeof e.name === 'string' ? clip(e.name) : 'Error',
      code: typeof e.code === 'string' ? clip(e.code) : null,
      message: typeof e.message === 'string' ? clip(e.message) : '',
      pid: typeof e.pid === 'number' ? e.pid : null,
    });
  }

  exited(pid, v) {
    push(this.exits, {
      time: Date.now(), pid, reason: v.reason, code: v.code, signal: v.signal, expected: v.expected,
    });
  }
}

// At most TEXT_LIMIT characters, as a fresh string (V8's slice of a long string keeps all of
// it alive).
function clip(s) {
  if (s.length <= TEXT_LIMIT) return s;
  return `${Buffer.from(s.slice(0, TEXT_LIMIT)).toString()}…`;
}

function push(list, entry) {
  if (list.length >= RECENT) list.shift();
  list.push(entry);
}

// Label values: backslash, double quote and newline escaped (the format's only escapes).
function esc(v) {
  return String(v).replace(/[\\"\n]/g, (c) => (c === '\n' ? '\\n' : `\\${c}`));
}

// A number as the format writes it.
function num(v) {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return '+Inf';
  if (v === -Infinity) return '-Inf';
  return String(v);
}

const FAMILIES = [
  ['comrade_jobs_total', 'counter', 'Jobs settled, by outcome (and by function, for jobs that name one).'],
  ['comrade_job_wait_seconds', 'histogram', 'Time from submission until the job was written to a worker (once per attempt).'],
  ['comrade_job_run_seconds', 'histogram', 'Time from writing a job to a worker until its answer (a result or a thrown error).'],
  ['comrade_queue_depth', 'gauge', 'Jobs waiting for a worker.'],
  ['comrade_jobs_in_flight', 'gauge', 'Jobs on workers.'],
  ['comrade_workers', 'gauge', 'Worker processes, by state.'],
  ['comrade_worker_exits_total', 'counter', 'Worker processes that ended, by reason.'],
  ['comrade_retries_total', 'counter', 'Jobs run again after their worker died.'],
];

/**
 * The exposition text for several pools' snapshots: `{ name, engine, stats, observer }` each,
 * `engine` the native metrics JSON (parsed), `stats` the pool's stats() totals. One HELP/TYPE
 * per family, every pool's samples under it.
 */
function render(snaps) {
  const out = [];
  for (const [family, type, help] of FAMILIES) {
    out.push(`# HELP ${family} ${help}`, `# TYPE ${family} ${type}`);
    for (const s of snaps) samples(out, family, s);
  }
  out.push('');
  return out.join('\n');
}

function samples(out, family, { name, engine: m, stats, observer }) {
  const pool = `pool="${esc(name)}"`;
  switch (family) {
    case 'comrade_jobs_total': {
      // Jobs of named functions under their name; the rest (the default function) without
      // the label, so that sum() over the family is every job once.
      const totals = outcomeTotals(stats);
      const rest = OUTCOMES.map((o) => totals[o]);
      for (const [fn, counts] of observer.fns) {
        for (let i = 0; i < OUTCOMES.length; i++) {
          out.push(`${family}{${pool},function="${esc(fn)}",outcome="${OUTCOMES[i]}"} ${counts[i]}`);
          rest[i] -= counts[i];
        }
      }
      for (let i = 0; i < OUTCOMES.length; i++) {
        out.push(`${family}{${pool},outcome="${OUTCOMES[i]}"} ${Math.max(0, rest[i])}`);
      }
      break;
    }
    case 'comrade_job_wait_seconds':
    case 'comrade_job_run_seconds': {
      const h = family === 'comrade_job_wait_seconds' ? m.wait : m.run;
      for (let i = 0; i < m.buckets.length; i++) {
        out.push(`${family}_bucket{${pool},le="${num(m.buckets[i])}"} ${h.counts[i]}`);
      }
      const count = h.counts[h.counts.length - 1];
      out.push(`${family}_bucket{${pool},le="+Inf"} ${count}`);
      out.push(`${family}_sum{${pool}} ${num(h.sum)}`);
      out.push(`${family}_count{${pool}} ${count}`);
      break;
    }
    case 'comrade_queue_depth':
      out.push(`${family}{${pool}} ${m.queued}`);
      break;
    case 'comrade_jobs_in_flight':
      out.push(`${family}{${pool}} ${m.inFlight}`);
      break;
    case 'comrade_workers':
      for (const state of Object.keys(m.workers)) {
        out.push(`${family}{${pool},state="${state}"} ${m.workers[state]}`);
      }
      break;
    case 'comrade_worker_exits_total':
      for (const reason of Object.keys(m.exits)) {
        out.push(`${family}{${pool},reason="${reason}"} ${m.exits[reason]}`);
      }
      break;
    case 'comrade_retries_total':
      out.push(`${family}{${pool}} ${m.retried}`);
      break;
    default:
      break;
  }
}

module.exports = {
  CONTENT_TYPE, OUTCOMES, OK, ERROR, TIMEOUT, ABORTED, REJECTED, COALESCED, RECENT, Observer,
  outcomeTotals, render,
};

// Type definitions for comrade's public API (hand-written; the generated binding.d.ts types
// the internal native layer only).

import { EventEmitter } from 'node:events';

/** Options of the compute-cluster-compatible constructor. */
export interface ComputeClusterOptions {
  /** Path of the worker script (required; must exist). */
  module: string;
  /** Most worker processes. Default: `Math.ceil(os.cpus().length * 1.25)`. */
  max_processes?: number;
  /** Most jobs waiting for a worker; any negative value means no limit. Default: `10 * max_processes`. */
  max_backlog?: number;
  /** Reject a job expected to take longer than this many seconds (after a warm-up). Default: 0 (off). */
  max_request_time?: number;
}

/**
 * Node-style callback of a compute-cluster job. Errors are strings, as in compute-cluster.
 */
export type ComputeClusterCallback<R = any> = (err: string | null, result?: R) => void;

/**
 * A drop-in replacement for the npm package compute-cluster@0.0.9, on the comrade engine.
 * May be called with or without `new`. Validation failures throw strings.
 */
export interface ComputeCluster extends EventEmitter {
  /** Runs `args` (any JSON value) on a worker; the worker's reply is passed to `cb`. */
  enqueue<R = any>(args: unknown, cb?: ComputeClusterCallback<R>): this;
  /** Stops every worker; `cb(null)` runs once all have exited. */
  exit(cb?: (err: null) => void): this;

  on(event: 'error', listener: (message: string) => void): this;
  on(event: 'info', listener: (message: string) => void): this;
  on(event: 'debug', listener: (message: string) => void): this;
  on(event: string | symbol, listener: (...args: any[]) => void): this;
  once(event: 'error' | 'info' | 'debug', listener: (message: string) => void): this;
  once(event: string | symbol, listener: (...args: any[]) => void): this;
}

export interface ComputeClusterConstructor {
  new (options: ComputeClusterOptions): ComputeCluster;
  (options: ComputeClusterOptions): ComputeCluster;
  readonly prototype: ComputeCluster;
}

export declare const ComputeCluster: ComputeClusterConstructor;

// ---------------------------------------------------------------------------------------------
// The modern Pool
// ---------------------------------------------------------------------------------------------

/** Codes of the errors the pool itself raises (workers' own errors keep their own `code`). */
export declare const codes: {
  readonly INVALID_OPTION: 'ERR_INVALID_OPTION';
  readonly INVALID_ARGUMENT: 'ERR_INVALID_ARGUMENT';
  readonly POOL_CLOSED: 'ERR_POOL_CLOSED';
  readonly POOL_TERMINATED: 'ERR_POOL_TERMINATED';
  readonly BACKLOG_FULL: 'ERR_BACKLOG_FULL';
  readonly EXPECTED_WAIT: 'ERR_EXPECTED_WAIT';
  readonly UNSERIALIZABLE: 'ERR_UNSERIALIZABLE';
  readonly MESSAGE_TOO_LARGE: 'ERR_MESSAGE_TOO_LARGE';
  readonly WORKER_EXITED: 'ERR_WORKER_EXITED';
  readonly WORKER_INIT_FAILED: 'ERR_WORKER_INIT_FAILED';
  readonly SPAWN_FAILED: 'ERR_SPAWN_FAILED';
  readonly JOB_TIMEOUT: 'ERR_JOB_TIMEOUT';
  /** The `code` of an abort's error, a DOMException named AbortError (not a PoolError). */
  readonly ABORTED: 'ABORT_ERR';
  /** Raised in the worker: it has no function of that name (or no default function). */
  readonly UNKNOWN_FUNCTION: 'ERR_UNKNOWN_FUNCTION';
  /** Raised in a Node worker: the function's result cannot be sent as JSON. */
  readonly UNSERIALIZABLE_RESULT: 'ERR_UNSERIALIZABLE_RESULT';
  readonly RESULT_TOO_LARGE: 'ERR_RESULT_TOO_LARGE';
  readonly INTERNAL: 'ERR_INTERNAL';
};

export type PoolErrorCode = (typeof codes)[keyof typeof codes];

/**
 * An error raised by the pool (not thrown by a worker's function): every one has a code of
 * `codes`. The one exception is an abort, which rejects with a DOMException named AbortError
 * (`code` ABORT_ERR, `cause` the signal's reason), as the web platform's APIs do.
 */
export declare class PoolError extends Error {
  readonly name: 'PoolError';
  code: PoolErrorCode;
  /** ERR_WORKER_EXITED, ERR_WORKER_INIT_FAILED, ERR_POOL_TERMINATED: the worker's pid. */
  pid?: number;
  /** The worker's exit code, or null when a signal ended it. */
  exitCode?: number | null;
  /** The signal that ended the worker (`'SIGKILL'`), or null. */
  signal?: string | null;
  /** ERR_BACKLOG_FULL: the limit. */
  maxBacklog?: number;
  /** ERR_MESSAGE_TOO_LARGE: the limit, in bytes. */
  maxMessage?: number;
  /** ERR_EXPECTED_WAIT: the expected completion time, in ms. */
  expectedWait?: number;
  /** ERR_WORKER_INIT_FAILED: the worker's own error (module load or init), when it sent one. */
  cause?: unknown;
}

interface PoolCommonOptions {
  /** The pool's name: the `pool` label of `metrics()`, the title on the status page. Default: `'default'`. */
  name?: string;
  /** Most worker processes. Default: `Math.ceil(cpus * 1.25)`. */
  maxWorkers?: number;
  /** Workers kept running even when idle; they start with the pool. Default: 0. */
  minWorkers?: number;
  /** The pool grows by at most one worker per this many ms (workers up to `minWorkers`, and the first, start at once). Default: 100. */
  spawnDelay?: number;
  /** Stop a worker idle for this many ms, unless that leaves fewer than `minWorkers`; 0 or Infinity: never. Default: 10000. */
  idleTimeout?: number;
  /** Replace a worker after it completed this many jobs. Default: off. */
  maxJobsPerWorker?: number;
  /** Replace a worker whose resident memory exceeds this many bytes (checked each second). Default: off. */
  maxRss?: number;
  /** Pin worker i to CPU i (Linux). Default: false. */
  affinity?: boolean;
  /** Added to each worker's nice value (an integer 0–19): lower CPU priority than the parent. Default: 0. */
  niceIncrement?: number;
  /** Times a job is run again on another worker if its worker dies while holding it. Default: 0. */
  retries?: number;
  /** Longest run time of a job on a worker, in ms; the worker is then killed and replaced (ERR_JOB_TIMEOUT). Default: off. */
  timeout?: number;
  /** Most jobs in flight on one worker at once (answered in any order). Default: 1. */
  concurrency?: number;
  /** A job's priority when `run()`/`exec()` give none (a finite number): higher runs sooner, equal ones first come first served. Default: 0. */
  priority?: number;
  /**
   * Guaranteed slots per priority range (proletariat's `prioritySlots`): `{ from: slots }`, each
   * key a priority >= 0 starting a range, each value an integer >= 0. The pool's slots are
   * `maxWorkers × concurrency`; the lowest range (below the first key, negative priorities too)
   * has the slots the others do not guarantee. A range's cap (most of its jobs in flight) is
   * its slots plus those of every range below it, or with `sacredGuarantees` its slots plus the
   * lowest range's. A job over its range's cap waits, even with slots free; the next job taken
   * is the highest-priority one whose range is under its cap. Guarantees beyond the slots:
   * ERR_INVALID_OPTION. Default: none (no caps).
   */
  prioritySlots?: Record<number, number>;
  /** With `prioritySlots`, a higher range borrows only from the lowest range (proletariat's `SACRED_GUARANTEES`). Default: false. */
  sacredGuarantees?: boolean;
  /** Passed to each worker's `init(initData)` before its first job (any JSON value). */
  initData?: unknown;
  /** Variables added to the workers' environment. */
  env?: Record<string, string | number | boolean | undefined>;
  /** Working directory of the workers. */
  cwd?: string;
  /** Most jobs waiting for a worker; more are refused with ERR_BACKLOG_FULL. Default: Infinity. */
  maxBacklog?: number;
  /** Refuse (ERR_EXPECTED_WAIT) a job expected to complete later than this many ms from now. */
  maxExpectedWait?: number;
  /** Longest message, in bytes, accepted from a worker or sent to one (larger arguments: ERR_MESSAGE_TOO_LARGE). Default: 64 MiB. */
  maxMessage?: number;
  /** Milliseconds between SIGTERM and SIGKILL when a worker is stopped. Default: 5000. */
  killGraceMs?: number;
  /** Milliseconds a worker has to answer a job cancelled while it runs (an abort, a timeout) before it is killed; 0 kills it at once. Default: 1000. */
  cancelGraceMs?: number;
}

export interface PoolModuleOptions extends PoolCommonOptions {
  /** A Node module (CommonJS or ESM) exporting a function, or an object of named functions. */
  module: string | URL;
  command?: never;
  /** Node flags for the workers. Default: the parent's, minus --inspect/--test/--watch. */
  execArgv?: string[];
}

export interface PoolCommandOptions extends PoolCommonOptions {
  /** An executable speaking docs/PROTOCOL.md, with its arguments: `['./worker', '--fast']`. */
  command: string | string[];
  module?: never;
}

export type PoolOptions = PoolModuleOptions | PoolCommandOptions;

/** A job's own options, for `exec()` and `run()`. Any other key is refused (ERR_INVALID_OPTION). */
export interface JobOptions<P = unknown> {
  /** Receives each `progress(value)` the job reports, in order, before it settles. */
  onProgress?: (value: P) => void;
  /** Aborting withdraws a queued job; a running one is cancelled (its worker is sent a cancel, and killed and replaced if it has not stopped the job within `cancelGraceMs`). Rejects at once with an AbortError: a DOMException, `code` ABORT_ERR, `cause` the signal's reason. */
  signal?: AbortSignal;
  /** This job's run timeout in ms (overrides the pool's `timeout`). */
  timeout?: number;
  /** This job's retries (overrides the pool's `retries`). */
  retries?: number;
  /** This job's priority, a finite number (overrides the pool's `priority`): higher runs sooner; a retried job goes back to the head of its priority. */
  priority?: number;
}

/** `run()`'s options: a job's own options, and the function to run. */
export interface RunOptions<P = unknown> extends JobOptions<P> {
  /** A named function instead of the default one. */
  name?: string;
}

/** `exec()`'s options: a job's own options (the function's name is exec's first argument). */
export type ExecOptions<P = unknown> = JobOptions<P> & { name?: never };

export interface WorkerStats {
  pid: number;
  state: 'starting' | 'idle' | 'busy' | 'stopping';
  jobsDone: number;
  jobsInFlight: number;
  /** Resident memory in bytes, or null if it cannot be read. */
  rss: number | null;
  /** The CPU it is pinned to (`affinity`), or null. */
  cpu: number | null;
}

export interface Percentiles {
  p50: number;
  p90: number;
  p99: number;
  /** How many recent jobs the percentiles cover. */
  samples: number;
}

export interface PoolStats {
  workers: WorkerStats[];
  /** Jobs waiting for a worker. */
  queued: number;
  /** Jobs on workers. */
  inFlight: number;
  /** Jobs accepted and not settled (queued, in flight, or about to be submitted). */
  pending: number;
  /** Jobs whose function returned. */
  completed: number;
  /** Jobs whose function threw. */
  errored: number;
  /** Jobs the pool failed (worker exit, timeout, close...). */
  failed: number;
  /** Times a job was re-run after its worker died. */
  retried: number;
  /** Jobs refused at submission. */
  rejected: number;
  /** Jobs their AbortSignal withdrew (queued or running), or refused because it was aborted already. */
  aborted: number;
  /** Jobs that ran past their timeout (ERR_JOB_TIMEOUT; also counted in `failed`). */
  timedOut: number;
  /** Completions per second over the last ten seconds (over the time since the start while that is shorter, counted as at least one second). */
  throughput: number;
  /** Time from submission to a worker, in ms, over recent jobs (null before any). */
  waitTime: Percentiles | null;
  /** Time on a worker, in ms, over recent jobs (null before any). */
  runTime: Percentiles | null;
}

/**
 * The context object of a job's events on the `comrade:job` TracingChannel
 * (`require('node:diagnostics_channel').tracingChannel('comrade:job')`): one object per job,
 * through start, end, error, asyncStart and asyncEnd.
 */
export interface JobTraceContext {
  /** The pool's `name`. */
  pool: string;
  /** The function the job named, or null for the default function. */
  function: string | null;
  /** The job's id in its pool. */
  jobId: number;
  /** The worker it was last sent to (null until it was sent). */
  pid: number | null;
  /** Submission to being written to its worker (the last attempt), in ms; null until then. */
  waitMs: number | null;
  /** Written to its worker to its answer, in ms; null if no worker answered (a timeout, a crash). */
  runMs: number | null;
  /** Set it (a W3C traceparent) in a `start` subscriber to have it sent with the call to the worker. */
  traceparent: string | null;
  /** What the job returned (asyncStart, asyncEnd). */
  result?: unknown;
  /** Why the job failed (error, asyncStart, asyncEnd). */
  error?: unknown;
}

/** A job's error as the status page lists it (`StatusSnapshot.errors`). */
export interface StatusError {
  /** When it failed, ms since the epoch. */
  time: number;
  /** The function the job named, or null for the default function. */
  function: string | null;
  name: string;
  code: string | null;
  message: string;
  /** The worker's pid, when the error says it (a worker exit, a timeout). */
  pid: number | null;
}

/** A worker exit as the status page lists it (`StatusSnapshot.exits`). */
export interface StatusExit {
  time: number;
  pid: number;
  reason: WorkerExitReason;
  code: number | null;
  signal: string | null;
  expected: boolean;
}

/** One pool in the status page's JSON (`?format=json`: `{ time, pools: StatusSnapshot[] }`). */
export interface StatusSnapshot {
  name: string;
  stats: PoolStats;
  /** One sample a second over the last 5 minutes, oldest first: time (ms since the epoch), queue depth, jobs settled per second. */
  history: { intervalMs: number; t: number[]; queued: number[]; throughput: number[] };
  /** The last 50 job errors (thrown, timed out, worker died...), oldest first. */
  errors: StatusError[];
  /** The last 50 worker exits, oldest first. */
  exits: StatusExit[];
}

/** A plain `(req, res)` handler, for `node:http` and Express. */
export type StatusHandler = (req: import('node:http').IncomingMessage, res: import('node:http').ServerResponse) => void;

/** Physical cores and execution units (logical CPUs) of this machine. */
export declare function ncpu(): { physical: number; logical: number };

/**
 * Why a worker ended: `'crash'` (nobody asked: it died, or its channel broke), `'idle'`
 * (`idleTimeout`), `'recycled'` (`maxJobsPerWorker`), `'retired'` (it called `retire()`),
 * `'memory'` (`maxRss`), `'timeout'` (killed for a job's timeout), `'aborted'` (killed for an
 * aborted job), `'protocol'` (killed for breaking the protocol), `'shutdown'` (`close()`,
 * `terminate()`).
 */
export type WorkerExitReason =
  | 'crash' | 'idle' | 'recycled' | 'retired' | 'memory' | 'timeout' | 'aborted' | 'protocol'
  | 'shutdown';

export interface WorkerExitInfo {
  pid: number;
  code: number | null;
  signal: string | null;
  /** The pool ended it, for any reason but a crash: false only when `reason` is `'crash'`. */
  expected: boolean;
  reason: WorkerExitReason;
}

type AnyFn = (...args: any[]) => any;
type FnNames<F> = { [K in keyof F]: F[K] extends AnyFn ? K : never }[keyof F] & string;
type DefaultArg<F> = F extends AnyFn ? Parameters<F>[0] : F extends { default: AnyFn } ? Parameters<F['default']>[0] : any;
type DefaultResult<F> = F extends AnyFn ? Awaited<ReturnType<F>> : F extends { default: AnyFn } ? Awaited<ReturnType<F['default']>> : any;
/** The parameters of the module's function `K`. */
type ArgsOf<F, K extends keyof F> = F[K] extends AnyFn ? Parameters<F[K]> : any[];
/** What the module's function `K` returns, awaited. */
type ResultOf<F, K extends keyof F> = F[K] extends AnyFn ? Awaited<ReturnType<F[K]>> : any;
/** `exec()`'s arguments after the name: the args array (optional when the function needs none), then options. */
type ExecRest<A extends readonly unknown[]> = [] extends A
  ? [args?: Readonly<A> | null, options?: ExecOptions]
  : [args: Readonly<A>, options?: ExecOptions];
/** `run()`'s `name` when the module is not described (any name), or when it is (none: the default function). */
type DefaultName<F> = string extends FnNames<F> ? string | null : null;

/**
 * A pool of worker processes. `F` may describe the worker module's exports
 * (`new Pool<typeof import('./tasks')>(...)`) to type `exec()`, `call()` and `run()` (by
 * `options.name`, or the default function).
 */
export declare class Pool<F = any> extends EventEmitter {
  constructor(options: PoolOptions);
  /** Runs the function `options.name` with `task` as its one argument. */
  run<K extends FnNames<F>>(
    task: F[K] extends AnyFn ? Parameters<F[K]>[0] : any,
    options: RunOptions & { name: K },
  ): Promise<ResultOf<F, K>>;
  /** Runs the default function with `task` as its one argument. */
  run<R = DefaultResult<F>>(task: DefaultArg<F>, options?: RunOptions & { name?: DefaultName<F> }): Promise<R>;
  /** Runs the named function with the array `args` as its arguments (workerpool's order). */
  exec<K extends FnNames<F>>(name: K, ...rest: ExecRest<ArgsOf<F, K>>): Promise<ResultOf<F, K>>;
  /** Runs the named function with positional arguments. */
  call<K extends FnNames<F>>(
    name: K,
    ...args: F[K] extends AnyFn ? Parameters<F[K]> : any[]
  ): Promise<F[K] extends AnyFn ? Awaited<ReturnType<F[K]>> : any>;
  /** Runs the default function; `cb` runs once, in the caller's async context. */
  enqueue<R = DefaultResult<F>>(task: DefaultArg<F>, cb: (err: Error | null, result?: R) => void): this;
  /** Lets every accepted job finish, then stops the workers; resolves when all are reaped. */
  close(): Promise<void>;
  /** Stops now: unsettled jobs reject with ERR_POOL_TERMINATED; resolves when all are reaped. */
  terminate(): Promise<void>;
  /** Pids of the live workers. */
  readonly pids: number[];
  /** Jobs accepted and not yet settled. */
  readonly pending: number;
  readonly maxWorkers: number;
  readonly minWorkers: number;
  readonly concurrency: number;
  /** Workers, queue, totals, throughput and wait/run time percentiles. */
  stats(): PoolStats;
  /** The `name` option. */
  readonly name: string;
  /** Prometheus text exposition (format 0.0.4) of the pool's counters, gauges and histograms. */
  metrics(): string;
  /** `metrics()` of several pools in one text (one HELP and TYPE per metric). */
  static metrics(pools: Pool<any> | readonly Pool<any>[]): string;
  /** The content type to serve `metrics()` with: `'text/plain; version=0.0.4; charset=utf-8'`. */
  static readonly METRICS_CONTENT_TYPE: string;
  /** A read-only live status page for this pool: HTML, or JSON with `?format=json`. */
  statusHandler(): StatusHandler;
  /** One status page for several pools. */
  static statusHandler(pools: Pool<any> | readonly Pool<any>[]): StatusHandler;

  on(event: 'event', listener: (name: string, data: unknown, pid: number) => void): this;
  on(event: 'workerSpawn' | 'workerRetire', listener: (worker: { pid: number }) => void): this;
  on(event: 'workerExit', listener: (info: WorkerExitInfo) => void): this;
  on(event: 'protocolError', listener: (info: { pid: number; message: string }) => void): this;
  on(event: string | symbol, listener: (...args: any[]) => void): this;
  once(event: 'event', listener: (name: string, data: unknown, pid: number) => void): this;
  once(event: 'workerSpawn' | 'workerRetire', listener: (worker: { pid: number }) => void): this;
  once(event: 'workerExit', listener: (info: WorkerExitInfo) => void): this;
  once(event: 'protocolError', listener: (info: { pid: number; message: string }) => void): this;
  once(event: string | symbol, listener: (...args: any[]) => void): this;
}
